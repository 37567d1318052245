#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads `\n`-terminated lines of raw bytes from a file descriptor, without decoding them.
///
/// Lines may be any length; the final line needs no terminator. Bytes are returned as read so the
/// caller decides what invalid UTF-8 means.
final class LineReader {
  private let descriptor: Int32
  private var buffer: [UInt8] = []
  private var start = 0
  private var finished = false

  /// Reads from `descriptor` (0 = standard input).
  init(descriptor: Int32) {
    self.descriptor = descriptor
  }

  /// The next line without its `\n`, or `nil` at end of input.
  ///
  /// - Throws: `CommandError.failure` when `read(2)` fails.
  func nextLine() throws(CommandError) -> [UInt8]? {
    var searchFrom = start
    while true {
      if let newline = buffer[searchFrom...].firstIndex(of: UInt8(ascii: "\n")) {
        let line = Array(buffer[start..<newline])
        start = newline + 1
        return line
      }
      if finished {
        guard start < buffer.count else { return nil }
        let line = Array(buffer[start...])
        start = buffer.count
        return line
      }
      searchFrom = buffer.count
      if start > 0 && start >= buffer.count / 2 {
        buffer.removeSubrange(0..<start)
        searchFrom -= start
        start = 0
      }
      try fill()
    }
  }

  private func fill() throws(CommandError) {
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let count = chunk.withUnsafeMutableBytes { bytes -> Int in
        guard let base = bytes.baseAddress else { return 0 }
        return read(descriptor, base, bytes.count)
      }
      if count < 0 {
        if errno == EINTR { continue }
        throw .failure("cannot read input: \(String(cString: strerror(errno)))")
      }
      if count == 0 {
        finished = true
      } else {
        buffer.append(contentsOf: chunk[0..<count])
      }
      return
    }
  }
}
