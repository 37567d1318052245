import Detection
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The output formats of batch scoring.
enum BatchOutputFormat: String {
  /// One reply object per line.
  case jsonl
  /// A header row, then one row per input record.
  case csv
}

/// Formats batch results as JSONL or CSV lines, in input order.
struct BatchResultFormatter {
  /// The output format.
  let format: BatchOutputFormat
  /// The model id written into JSONL replies.
  let modelID: String
  /// Extra CSV columns after the fixed ones (input columns), in order.
  let extraColumns: [String]
  /// The prompt field name, for the CSV column holding the prompt when the input is not CSV.
  let promptField: String

  /// The fixed CSV columns.
  static let csvColumns = ["line", "decision", "score", "threshold", "tokens", "error"]

  /// The CSV header line (with its newline); empty for JSONL.
  var header: String {
    guard format == .csv else { return "" }
    return (Self.csvColumns + extraColumns).map(BatchRecordReader.csvField).joined(separator: ",") + "\n"
  }

  /// One output line (with its newline) for a record and its outcome.
  func line(
    for record: BatchRecord, outcome: Result<Decision, BatchRecordError>, prompt: String?, latency: Double
  ) -> String {
    switch format {
    case .jsonl:
      let extra = record.fields.map { ",\(JSONText.string($0.name)):\($0.json)" }.joined()
      switch outcome {
      case .success(let decision):
        let reply = ScoreCommand.json(decision, model: modelID, latency: latency)
        return "{\"line\":\(record.line),\(reply.dropFirst().dropLast())\(extra)}\n"
      case .failure(let error):
        return "{\"line\":\(record.line),\"error\":{\"code\":\(JSONText.string(error.code)),"
          + "\"message\":\(JSONText.string(error.message))}\(extra)}\n"
      }
    case .csv:
      var values = ["\(record.line)"]
      switch outcome {
      case .success(let decision):
        values += [
          decision.verdict.rawValue, JSONText.number(decision.score), JSONText.number(decision.threshold),
          "\(decision.tokens)", "",
        ]
      case .failure(let error):
        values += ["", "", "", "", "\(error.code): \(error.message)"]
      }
      var byName: [String: String] = [:]
      for field in record.fields { byName[field.name] = field.text }
      if let prompt { byName[promptField] = byName[promptField] ?? prompt }
      values += extraColumns.map { byName[$0] ?? "" }
      return values.map(BatchRecordReader.csvField).joined(separator: ",") + "\n"
    }
  }
}

/// Preparing an output file for `--resume`.
enum BatchResume {
  /// Counts the complete records already in the output file at `descriptor`, cuts off a trailing
  /// partial record, and leaves the file offset at its end.
  ///
  /// A JSONL record is a line ending in `\n`; a CSV record is a row ending in `\n` outside quotes,
  /// the first of which is the header (not counted).
  ///
  /// - Returns: The records kept and whether a CSV header is present.
  /// - Throws: `CommandError.failure` when the file cannot be read or truncated.
  static func prepare(descriptor: Int32, format: BatchOutputFormat) throws(CommandError) -> (
    records: Int, hasHeader: Bool
  ) {
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    var offset = 0
    var completeEnd = 0
    var rows = 0
    var inQuotes = false
    while true {
      let count = chunk.withUnsafeMutableBytes { bytes -> Int in
        guard let base = bytes.baseAddress else { return 0 }
        return read(descriptor, base, bytes.count)
      }
      if count < 0 {
        if errno == EINTR { continue }
        throw .failure("cannot read the output file to resume: \(String(cString: strerror(errno)))")
      }
      if count == 0 { break }
      for index in 0..<count {
        let byte = chunk[index]
        if format == .csv && byte == UInt8(ascii: "\"") {
          inQuotes.toggle()
        } else if byte == UInt8(ascii: "\n") && !inQuotes {
          rows += 1
          completeEnd = offset + index + 1
        }
      }
      offset += count
    }
    if completeEnd < offset {
      guard ftruncate(descriptor, off_t(completeEnd)) == 0 else {
        throw .failure("cannot truncate the output file: \(String(cString: strerror(errno)))")
      }
    }
    guard lseek(descriptor, off_t(completeEnd), SEEK_SET) >= 0 else {
      throw .failure("cannot seek in the output file: \(String(cString: strerror(errno)))")
    }
    if format == .csv { return (max(rows - 1, 0), rows > 0) }
    return (rows, false)
  }
}

/// Set by the `SIGINT` handler; batch scoring stops after the current micro-batch.
nonisolated(unsafe) private var interruptFlag: sig_atomic_t = 0

/// `SIGINT` handling for batch scoring: the first Ctrl-C asks the loop to stop after the current
/// micro-batch, a second one ends the process at once.
enum BatchInterrupt {
  /// Installs the handler.
  static func install() {
    interruptFlag = 0
    signal(SIGINT) { _ in
      interruptFlag = 1
      signal(SIGINT, SIG_DFL)
    }
  }

  /// Whether Ctrl-C was pressed.
  static var requested: Bool { interruptFlag != 0 }
}
