import Detection
import Foundation
import Serving

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

/// What scoring one record gave: a prompt's decision, or a conversation's judged messages each
/// with its decision, summed up as `serve` sums up a `messages` request.
struct BatchOutcome {
  /// The decision that stands for the record: the prompt's, or the highest-scoring judged
  /// message's (the first of equals); its score and threshold are the record's.
  let top: Decision
  /// Whether the record is rejected: its prompt is, or any judged message is.
  let rejected: Bool
  /// The prompt's tokens, or the judged messages' tokens summed.
  let tokens: Int
  /// A conversation's judged messages in order, each with its decision; `nil` for a prompt.
  let messages: [(message: JudgedMessage, decision: Decision)]?

  /// A prompt's outcome.
  init(prompt decision: Decision) {
    top = decision
    rejected = decision.verdict == .reject
    tokens = decision.tokens
    messages = nil
  }

  /// A conversation's outcome; `nil` when no message was judged (the reader never gives such a
  /// conversation: `WireProtocol.readMessages` refuses it).
  init?(conversation judged: [(message: JudgedMessage, decision: Decision)]) {
    guard var top = judged.first?.decision else { return nil }
    for next in judged.dropFirst() where next.decision.score > top.score { top = next.decision }
    self.top = top
    rejected = judged.contains { $0.decision.verdict == .reject }
    tokens = judged.reduce(0) { $0 + $1.decision.tokens }
    messages = judged
  }
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
  ///
  /// A conversation's JSONL line is `serve`'s reply to a `messages` request without `id` and
  /// `audit_id`s: `decision`, the top message's `score`, `threshold` and `model`, `messages` (per
  /// judged message `index`, `role` and a prompt reply's fields) and `latency_ms` (for all its
  /// messages). In CSV it is one row: `decision`, the top `score` and `threshold`, and `tokens`
  /// summed over its judged messages.
  ///
  /// - Parameters:
  ///   - record: The input record.
  ///   - outcome: What scoring it gave.
  ///   - latency: Scoring time per prompt (milliseconds); a conversation's is this times its
  ///     judged messages.
  func line(for record: BatchRecord, outcome: Result<BatchOutcome, BatchRecordError>, latency: Double)
    -> String
  {
    switch format {
    case .jsonl:
      let extra = record.fields.map { ",\(JSONText.string($0.name)):\($0.json)" }.joined()
      switch outcome {
      case .success(let scored):
        guard let messages = scored.messages else {
          let reply = ScoreCommand.json(scored.top, model: modelID, latency: latency)
          return "{\"line\":\(record.line),\(reply.dropFirst().dropLast())\(extra)}\n"
        }
        let reply = conversationJSON(scored, messages: messages, latency: latency)
        return "{\"line\":\(record.line),\(reply.dropFirst().dropLast())\(extra)}\n"
      case .failure(let error):
        return "{\"line\":\(record.line),\"error\":{\"code\":\(JSONText.string(error.code)),"
          + "\"message\":\(JSONText.string(error.message))}\(extra)}\n"
      }
    case .csv:
      var values = ["\(record.line)"]
      switch outcome {
      case .success(let scored):
        values += [
          (scored.rejected ? Decision.Verdict.reject : .accept).rawValue, JSONText.number(scored.top.score),
          JSONText.number(scored.top.threshold), "\(scored.tokens)", "",
        ]
      case .failure(let error):
        values += ["", "", "", "", "\(error.code): \(error.message)"]
      }
      var byName: [String: String] = [:]
      for field in record.fields { byName[field.name] = field.text }
      if case .success(.prompt(let prompt)) = record.input {
        byName[promptField] = byName[promptField] ?? prompt
      }
      values += extraColumns.map { byName[$0] ?? "" }
      return values.map(BatchRecordReader.csvField).joined(separator: ",") + "\n"
    }
  }

  /// A conversation's reply object: `decision`, `score`, `threshold`, `model`, `messages`,
  /// `latency_ms`; each `messages` entry is `index`, `role`, then `WireProtocol.decisionMembers`
  /// (as in `serve`'s reply, without `audit_id`).
  private func conversationJSON(
    _ outcome: BatchOutcome, messages: [(message: JudgedMessage, decision: Decision)], latency: Double
  ) -> String {
    let entries = messages.map { message, decision in
      JSONWriter.object(
        [("index", "\(message.index)"), ("role", JSONWriter.string(message.role))]
          + WireProtocol.decisionMembers(decision, modelID: modelID))
    }
    let total = latency * Double(messages.count)
    return JSONWriter.object([
      ("decision", JSONWriter.string((outcome.rejected ? Decision.Verdict.reject : .accept).rawValue)),
      ("score", JSONWriter.number(outcome.top.score)),
      ("threshold", JSONWriter.number(outcome.top.threshold)),
      ("model", JSONWriter.string(modelID)),
      ("messages", "[" + entries.joined(separator: ",") + "]"),
      ("latency_ms", JSONWriter.number((total * 1000).rounded() / 1000)),
    ])
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
