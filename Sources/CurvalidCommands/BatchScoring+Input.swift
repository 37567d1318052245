import Foundation
import Serving

/// Why one input record could not be scored: a code for programs and a message for people.
struct BatchRecordError: Error, Sendable {
  /// Machine-readable code (`invalid_json`, `missing_field`, `invalid_utf8`, `empty_prompt`, …).
  let code: String
  /// One line for people.
  let message: String
}

/// What one batch record asks to have scored.
enum BatchInput {
  /// One prompt (a JSONL field, a CSV column or a text line).
  case prompt(String)
  /// A conversation (a JSONL record's `messages`): the messages to judge, each scored on its own,
  /// chosen as `serve` chooses them (`WireProtocol.readMessages`).
  case conversation([JudgedMessage])
}

/// One record of a batch input: where it started, what to score (or why there is nothing) and
/// the other fields to pass through to the output.
struct BatchRecord {
  /// A field copied from the input to the output.
  struct Field {
    /// The field (or column) name.
    let name: String
    /// The value as JSON text (raw JSON for JSONL input, a JSON string for CSV input).
    let json: String
    /// The value as plain text (for CSV output).
    let text: String
  }

  /// The 1-based input line the record starts on.
  let line: Int
  /// The prompt or conversation, or why the record is bad.
  let input: Result<BatchInput, BatchRecordError>
  /// Fields passed through to the output, in input order.
  let fields: [Field]
}

/// The input formats of batch scoring.
enum BatchInputFormat: String {
  /// One JSON object per line with the prompt in a named field.
  case jsonl
  /// RFC 4180 CSV with a header row; the prompt is a named column.
  case csv
  /// One prompt per line.
  case text

  /// The format `--format` names, else the one `path`'s extension implies, else JSONL.
  ///
  /// - Throws: `CommandError.usage` for a name that is not a format.
  static func chosen(_ name: String?, path: String?) throws(CommandError) -> BatchInputFormat {
    if let name {
      guard let format = BatchInputFormat(rawValue: name) else {
        throw .usage("--format must be jsonl, csv or text, got '\(name)'")
      }
      return format
    }
    return path.flatMap(guess) ?? .jsonl
  }

  /// The format implied by a file name's extension, if any.
  static func guess(path: String) -> BatchInputFormat? {
    switch URL(fileURLWithPath: path).pathExtension.lowercased() {
    case "jsonl", "ndjson", "json": .jsonl
    case "csv": .csv
    case "txt", "text": .text
    default: nil
    }
  }
}

/// Reads batch records one at a time from a file descriptor, in any `BatchInputFormat`.
///
/// Memory use is bounded by the longest record: nothing but the current line is kept.
final class BatchRecordReader {
  /// Field names that replies use, so input fields with these names are not passed through.
  static let replyFields: Set<String> = [
    "line", "decision", "score", "threshold", "model", "tokens", "features", "latency_ms", "explanation",
    "error",
  ]

  /// The JSONL field that holds a conversation instead of a prompt.
  static let messagesField = "messages"

  private let lines: LineReader
  private let format: BatchInputFormat
  private let fieldNames: [String]
  private let trustedRoles: Set<String>?
  private let maxPromptScalars: Int
  private var lineNumber = 0
  /// The CSV header, once read.
  private(set) var header: [String] = []
  private var promptColumn = 0

  /// Opens a reader; for CSV, reads the header row.
  ///
  /// - Parameters:
  ///   - descriptor: The input file descriptor.
  ///   - format: The input format.
  ///   - fieldNames: Candidate prompt field names, first match wins.
  ///   - trustedRoles: For JSONL input, the roles (lower case) whose messages a `messages` record
  ///     does not judge; `nil` reads no conversations (a `messages` field is then an ordinary one).
  ///   - maxPromptScalars: The longest prompt, and the longest judged message, in Unicode scalars;
  ///     a longer one makes its record a `prompt_too_long` error, as `serve` answers it.
  /// - Throws: `CommandError.failure` when the input cannot be read or a CSV header has no prompt
  ///   column.
  init(
    descriptor: Int32, format: BatchInputFormat, fieldNames: [String], trustedRoles: Set<String>? = nil,
    maxPromptScalars: Int = .max
  ) throws(CommandError) {
    lines = LineReader(descriptor: descriptor)
    self.format = format
    self.fieldNames = fieldNames
    self.trustedRoles = format == .jsonl ? trustedRoles : nil
    self.maxPromptScalars = maxPromptScalars
    if format == .csv, let (_, bytes) = try nextCSVRecordBytes() {
      guard let text = String(validating: bytes, as: UTF8.self) else {
        throw .failure("the CSV header is not valid UTF-8")
      }
      header = Self.parseCSV(text)
      guard let column = fieldNames.lazy.compactMap({ self.header.firstIndex(of: $0) }).first else {
        throw .failure(
          "the CSV header has no column named \(fieldNames.map { "'\($0)'" }.joined(separator: " or "))")
      }
      promptColumn = column
    }
  }

  /// The name of the prompt field for output (the CSV column, else the first candidate name).
  var promptFieldName: String {
    format == .csv && header.indices.contains(promptColumn) ? header[promptColumn] : fieldNames[0]
  }

  /// The next record, or `nil` at the end of the input. Blank JSONL and CSV lines are skipped.
  ///
  /// - Throws: `CommandError.failure` when reading fails.
  func next() throws(CommandError) -> BatchRecord? {
    guard let record = try nextRecord() else { return nil }
    guard case .success(.prompt(let prompt)) = record.input, prompt.unicodeScalars.count > maxPromptScalars
    else { return record }
    let error = BatchRecordError(
      code: ReplyError.Code.promptTooLong.rawValue,
      message: "the prompt is longer than \(maxPromptScalars) characters")
    return BatchRecord(line: record.line, input: .failure(error), fields: record.fields)
  }

  /// The next record as read, before the prompt limit.
  private func nextRecord() throws(CommandError) -> BatchRecord? {
    switch format {
    case .text:
      guard var bytes = try lines.nextLine() else { return nil }
      lineNumber += 1
      if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
      guard let text = String(validating: bytes, as: UTF8.self) else {
        return BatchRecord(line: lineNumber, input: .failure(Self.invalidUTF8), fields: [])
      }
      return BatchRecord(line: lineNumber, input: .success(.prompt(text)), fields: [])
    case .jsonl:
      while let bytes = try lines.nextLine() {
        lineNumber += 1
        if bytes.allSatisfy({ [0x20, 0x09, 0x0D].contains($0) }) { continue }
        return jsonRecord(bytes, line: lineNumber)
      }
      return nil
    case .csv:
      while let (line, bytes) = try nextCSVRecordBytes() {
        if bytes.isEmpty || bytes == [0x0D] { continue }
        return csvRecord(bytes, line: line)
      }
      return nil
    }
  }

  private static let invalidUTF8 = BatchRecordError(
    code: "invalid_utf8", message: "the record is not valid UTF-8")

  /// A JSONL record: a prompt in the first of `fieldNames` present or, when conversations are
  /// read, a non-null `messages` array (then the prompt field must be absent or `null`).
  private func jsonRecord(_ bytes: [UInt8], line: Int) -> BatchRecord {
    guard String(validating: bytes, as: UTF8.self) != nil else {
      return BatchRecord(line: line, input: .failure(Self.invalidUTF8), fields: [])
    }
    let parsed = try? JSONSerialization.jsonObject(with: Data(bytes), options: [])
    guard let object = parsed as? [String: Any], let members = Self.rawMembers(bytes) else {
      return BatchRecord(
        line: line,
        input: .failure(BatchRecordError(code: "invalid_json", message: "the line is not a JSON object")),
        fields: [])
    }
    let name = fieldNames.first { object[$0] != nil }
    var fields: [BatchRecord.Field] = []
    for (key, raw) in members
    where key != name && !Self.replyFields.contains(key) && (trustedRoles == nil || key != Self.messagesField)
    {
      let text = (object[key] as? String) ?? raw
      fields.append(BatchRecord.Field(name: key, json: raw, text: text))
    }
    if let trustedRoles, let messages = members.last(where: { $0.0 == Self.messagesField })?.1,
      messages != "null"
    {
      if let name, !(object[name] is NSNull) {
        return BatchRecord(
          line: line,
          input: .failure(
            BatchRecordError(
              code: ReplyError.Code.wrongType.rawValue,
              message: "give either '\(name)' or '\(Self.messagesField)', not both")),
          fields: fields)
      }
      return BatchRecord(
        line: line,
        input: Self.conversation(messages, trustedRoles: trustedRoles, maxPromptScalars: maxPromptScalars),
        fields: fields)
    }
    guard let name else {
      let names = fieldNames.map { "'\($0)'" }.joined(separator: " or ")
      return BatchRecord(
        line: line, input: .failure(BatchRecordError(code: "missing_field", message: "no field \(names)")),
        fields: fields)
    }
    guard let prompt = object[name] as? String else {
      return BatchRecord(
        line: line,
        input: .failure(BatchRecordError(code: "missing_field", message: "field '\(name)' is not a string")),
        fields: fields)
    }
    return BatchRecord(line: line, input: .success(.prompt(prompt)), fields: fields)
  }

  /// The messages to judge in a record's `messages` value (raw JSON text), chosen by the service's
  /// own rules (`WireProtocol.readMessages`, docs/protocol.md "Score a conversation"), each judged
  /// message at most `maxPromptScalars` Unicode scalars long.
  ///
  /// - Returns: The judged messages, or the service's error code and message: `wrong_type`,
  ///   `too_many_messages`, `prompt_too_long`, `missing_prompt` (nothing to judge), `invalid_json`
  ///   (nested too deep).
  static func conversation(
    _ raw: String, trustedRoles: Set<String>, maxPromptScalars: Int = .max
  ) -> Result<BatchInput, BatchRecordError> {
    let value: JSONValue
    do {
      value = try JSONValue.parse(Array(raw.utf8)[...])
    } catch {
      return .failure(BatchRecordError(code: ReplyError.Code.invalidJSON.rawValue, message: error.message))
    }
    do {
      let judged = try WireProtocol.readMessages(
        value, maxPromptScalars: maxPromptScalars, trustedRoles: trustedRoles)
      return .success(.conversation(judged))
    } catch {
      return .failure(BatchRecordError(code: error.code.rawValue, message: error.message))
    }
  }

  private func csvRecord(_ bytes: [UInt8], line: Int) -> BatchRecord {
    guard let text = String(validating: bytes, as: UTF8.self) else {
      return BatchRecord(line: line, input: .failure(Self.invalidUTF8), fields: [])
    }
    let values = Self.parseCSV(text)
    var fields: [BatchRecord.Field] = []
    for (index, name) in header.enumerated()
    where index != promptColumn && index < values.count && !Self.replyFields.contains(name) {
      fields.append(BatchRecord.Field(name: name, json: JSONText.string(values[index]), text: values[index]))
    }
    guard promptColumn < values.count else {
      return BatchRecord(
        line: line,
        input: .failure(
          BatchRecordError(
            code: "missing_field", message: "the row has \(values.count) columns, the header \(header.count)")
        ),
        fields: fields)
    }
    return BatchRecord(line: line, input: .success(.prompt(values[promptColumn])), fields: fields)
  }

  /// The bytes of the next CSV record (lines joined while a quoted field is open) and its first line.
  private func nextCSVRecordBytes() throws(CommandError) -> (Int, [UInt8])? {
    guard var bytes = try lines.nextLine() else { return nil }
    lineNumber += 1
    let start = lineNumber
    var quotes = bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\"") ? 1 : 0) }
    while quotes % 2 == 1, let more = try lines.nextLine() {
      lineNumber += 1
      bytes.append(UInt8(ascii: "\n"))
      bytes += more
      quotes += more.reduce(0) { $0 + ($1 == UInt8(ascii: "\"") ? 1 : 0) }
    }
    return (start, bytes)
  }

  /// Splits one CSV record (RFC 4180: `"` quotes a field, `""` inside quotes is one quote).
  ///
  /// A trailing `\r` (from `\r\n` line ends) outside quotes is dropped; a stray quote inside an
  /// unquoted field is kept literally.
  static func parseCSV(_ record: String) -> [String] {
    var fields: [String] = []
    var field = ""
    var inQuotes = false
    var quoted = false
    var scalars = Array(record.unicodeScalars)
    if scalars.last == "\r" { scalars.removeLast() }
    var index = 0
    while index < scalars.count {
      let scalar = scalars[index]
      index += 1
      if inQuotes {
        if scalar == "\"" {
          if index < scalars.count && scalars[index] == "\"" {
            field.unicodeScalars.append("\"")
            index += 1
          } else {
            inQuotes = false
          }
        } else {
          field.unicodeScalars.append(scalar)
        }
      } else if scalar == "," {
        fields.append(field)
        field = ""
        quoted = false
      } else if scalar == "\"" && field.isEmpty && !quoted {
        inQuotes = true
        quoted = true
      } else {
        field.unicodeScalars.append(scalar)
      }
    }
    fields.append(field)
    return fields
  }

  /// `value` as one CSV field, quoted when it holds a comma, quote or line break.
  static func csvField(_ value: String) -> String {
    guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" })
    else { return value }
    return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }

  /// The members of a top-level JSON object as (decoded key, raw value text), in order; `nil`
  /// when `bytes` is not an object. The bytes are known to be valid JSON.
  static func rawMembers(_ bytes: [UInt8]) -> [(String, String)]? {
    var index = 0
    func skipSpace() {
      while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }
    /// Skips a string starting at `index` (a quote) and returns its raw text with quotes.
    func skipString() -> ArraySlice<UInt8> {
      let start = index
      index += 1
      while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
        index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
      }
      index += 1
      return bytes[start..<min(index, bytes.count)]
    }
    func skipValue() {
      var depth = 0
      while index < bytes.count {
        let byte = bytes[index]
        if byte == UInt8(ascii: "\"") {
          _ = skipString()
          if depth == 0 { return }
          continue
        }
        if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") { depth += 1 }
        if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
          if depth == 0 { return }
          depth -= 1
          if depth == 0 {
            index += 1
            return
          }
        }
        if depth == 0 && byte == UInt8(ascii: ",") { return }
        index += 1
      }
    }
    skipSpace()
    guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
    index += 1
    var members: [(String, String)] = []
    while true {
      skipSpace()
      guard index < bytes.count else { return nil }
      if bytes[index] == UInt8(ascii: "}") { return members }
      if bytes[index] == UInt8(ascii: ",") {
        index += 1
        continue
      }
      guard bytes[index] == UInt8(ascii: "\"") else { return nil }
      let rawKey = skipString()
      guard
        let key = try? JSONSerialization.jsonObject(with: Data(rawKey), options: [.fragmentsAllowed])
          as? String
      else { return nil }
      skipSpace()
      guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
      index += 1
      skipSpace()
      let start = index
      skipValue()
      var end = index
      while end > start, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[end - 1]) { end -= 1 }
      members.append((key, String(decoding: bytes[start..<end], as: UTF8.self)))
    }
  }
}
