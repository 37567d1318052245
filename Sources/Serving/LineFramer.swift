/// Splits a byte stream into `\n`-terminated lines, never buffering more than one bounded line.
///
/// A line longer than `maxLineBytes` (without its `\n`, and without a trailing `\r`) is reported as
/// `.tooLong` as soon as the limit is exceeded, without waiting for its end; the framer is then
/// spent (the connection closes after the error reply).
struct LineFramer {
  /// One framing result.
  enum Frame: Equatable {
    /// A complete line, without `\n` and without a trailing `\r`.
    case line([UInt8])
    /// The current line exceeds the limit.
    case tooLong
  }

  /// The longest accepted line in bytes.
  let maxLineBytes: Int
  private var buffer: [UInt8] = []
  /// Where the current (unfinished) line starts in `buffer`.
  private var lineStart = 0
  /// Where the search for `\n` resumes (bytes before it are known not to be `\n`).
  private var scanned = 0
  private(set) var overflowed = false

  /// Creates a framer.
  init(maxLineBytes: Int) {
    self.maxLineBytes = maxLineBytes
  }

  /// Bytes of an unfinished line are buffered.
  var hasPartialLine: Bool { buffer.count > lineStart }

  /// Appends received bytes.
  mutating func append(_ bytes: UnsafeRawBufferPointer) {
    if lineStart > 0 && lineStart >= buffer.count / 2 {
      buffer.removeSubrange(0..<lineStart)
      scanned -= lineStart
      lineStart = 0
    }
    buffer.append(contentsOf: bytes)
  }

  /// The next complete line, `.tooLong`, or `nil` when more bytes are needed.
  ///
  /// - Complexity: Amortized O(n) over all appended bytes.
  mutating func next() -> Frame? {
    guard !overflowed else { return nil }
    let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n"))
    guard let end = newline else {
      scanned = buffer.count
      // A trailing `\r` may still be stripped, so allow one extra byte before giving up.
      if buffer.count - lineStart > maxLineBytes + 1 {
        overflowed = true
        return .tooLong
      }
      return nil
    }
    var lineEnd = end
    if lineEnd > lineStart, buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
    let line = Array(buffer[lineStart..<lineEnd])
    lineStart = end + 1
    scanned = lineStart
    if line.count > maxLineBytes {
      overflowed = true
      return .tooLong
    }
    return .line(line)
  }
}
