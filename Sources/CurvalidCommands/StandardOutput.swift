import Foundation
import Serving

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Buffered writing to a file descriptor (standard output by default).
///
/// Text accumulates in a 64 KiB buffer and is written with `write(2)`, retrying partial and
/// interrupted writes. A closed pipe or full disk becomes a `CommandError.failure` instead of a
/// signal: `SIGPIPE` is ignored process-wide by `CurvalidCLI.run`.
final class OutputWriter {
  private let descriptor: Int32
  private var buffer: [UInt8] = []
  private let capacity = 1 << 16

  /// Writes to `descriptor` (1 = standard output).
  init(descriptor: Int32 = 1) {
    self.descriptor = descriptor
    buffer.reserveCapacity(capacity)
  }

  /// Appends text, flushing when the buffer is full.
  func write(_ text: String) throws(CommandError) {
    buffer.append(contentsOf: text.utf8)
    if buffer.count >= capacity { try flush() }
  }

  /// Writes out everything buffered.
  func flush() throws(CommandError) {
    var offset = 0
    while offset < buffer.count {
      let written = buffer.withUnsafeBytes { bytes -> Int in
        guard let base = bytes.baseAddress else { return 0 }
        return systemWrite(descriptor, base + offset, bytes.count - offset)
      }
      if written < 0 {
        if errno == EINTR { continue }
        let reason = String(cString: strerror(errno))
        buffer.removeAll(keepingCapacity: true)
        throw .failure("cannot write output: \(reason)")
      }
      offset += written
    }
    buffer.removeAll(keepingCapacity: true)
  }
}

/// The C library's `write(2)`, named apart from `OutputWriter.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
  write(descriptor, bytes, count)
}

/// Writes one line to standard error, unbuffered.
func printError(_ line: String) {
  FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// JSON text for the command outputs: the same writer the service's replies use.
enum JSONText {
  /// `text` as a JSON string literal, with quotes, backslashes and control characters escaped.
  static func string(_ text: String) -> String { JSONWriter.string(text) }

  /// A finite number in JSON syntax (shortest text that reads back as the same `Float`);
  /// non-finite values become `null`.
  static func number(_ value: Float) -> String { JSONWriter.number(value) }

  /// A finite number in JSON syntax; non-finite values become `null`.
  static func number(_ value: Double) -> String { JSONWriter.number(value) }
}
