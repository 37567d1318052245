import Detection

/// An error reply: `{"id":…,"error":{"code":…,"message":…}}` (docs/protocol.md lists every code).
///
/// `package` so that `curvalid score` reports a conversation record's errors with the same codes.
package struct ReplyError: Error, Equatable {
  /// The wire error codes.
  package enum Code: String, Sendable, CaseIterable {
    case invalidJSON = "invalid_json"
    case invalidUTF8 = "invalid_utf8"
    case missingPrompt = "missing_prompt"
    case emptyPrompt = "empty_prompt"
    case wrongType = "wrong_type"
    case lineTooLong = "line_too_long"
    case promptTooLong = "prompt_too_long"
    case overloaded
    case unauthorized
    case unknownOp = "unknown_op"
    case reloadFailed = "reload_failed"
    case timeout
    case tooManyMessages = "too_many_messages"
    case `internal`
  }

  /// What went wrong, for programs.
  package let code: Code
  /// One line for people.
  package let message: String

  init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// The matching wire error for a scorer's per-prompt failure.
  init(_ error: DetectionError) {
    switch error.code {
    case .emptyPrompt: self.init(.emptyPrompt, error.message)
    case .promptTooLong: self.init(.promptTooLong, error.message)
    case .invalidUTF8: self.init(.invalidUTF8, error.message)
    default: self.init(.internal, "scoring failed: \(error.message)")
    }
  }
}

/// One message of a `messages` request that is judged: its place in the array, its role and its
/// text (a string content, or its text parts joined by line breaks).
///
/// `package` so that `curvalid score` judges a conversation record's messages the same way.
package struct JudgedMessage: Equatable, Sendable {
  /// The message's place in the `messages` array (0-based).
  package let index: Int
  /// The role as sent (not lower-cased).
  package let role: String
  /// The text that is scored.
  package let text: String
}

/// One parsed request line.
enum Request: Equatable {
  /// Score one prompt.
  case score(prompt: String, client: String?, explain: Bool)
  /// Score each untrusted message of a conversation on its own (`"messages"` instead of `"prompt"`).
  case scoreMessages(messages: [JudgedMessage], client: String?, explain: Bool)
  /// `{"op":"health"}`.
  case health
  /// `{"op":"version"}`.
  case version
  /// `{"op":"stats"}`, optionally `"format":"prometheus"`.
  case stats(prometheus: Bool)
  /// `{"op":"reload","token":…}`.
  case reload(token: String?)
}

/// A request line after parsing: the request's `id` (when readable) and the request or its error.
struct ParsedLine: Equatable {
  /// The `id` as JSON text to echo (`"r1"` or `17`), or `nil`.
  var idJSON: String?
  /// The `id` as plain text for the audit log.
  var idText: String?
  /// The request, or the error to answer.
  var request: Result<Request, ReplyError>
}

/// Parsing request lines and rendering replies (DESIGN.md §4).
///
/// `package`: `curvalid score` reuses `readMessages` and `decisionMembers` for conversation records.
package enum WireProtocol {
  /// Parses one line (without its newline).
  ///
  /// - Parameters:
  ///   - line: The raw bytes.
  ///   - maxPromptScalars: The longest prompt accepted, in Unicode scalars.
  ///   - trustedRoles: Roles (lower case) whose messages are not judged.
  /// - Returns: The id and request, or the id (when it can be read) and the error.
  static func parse(_ line: [UInt8], maxPromptScalars: Int, trustedRoles: Set<String>) -> ParsedLine {
    guard isValidUTF8(line) else {
      // Recover the id from a repaired copy so that even this error carries it.
      let repaired = Array(String(decoding: line, as: UTF8.self).utf8)
      var parsed = ParsedLine(idJSON: nil, idText: nil, request: .failure(ReplyError(.invalidUTF8, "")))
      if case .object(let members)? = try? JSONValue.parse(repaired[...]), let id = try? readID(members) {
        parsed.idJSON = id.json
        parsed.idText = id.text
      }
      parsed.request = .failure(ReplyError(.invalidUTF8, "the request line is not valid UTF-8"))
      return parsed
    }
    let value: JSONValue
    do {
      value = try JSONValue.parse(line[...])
    } catch {
      return ParsedLine(idJSON: nil, idText: nil, request: .failure(ReplyError(.invalidJSON, error.message)))
    }
    guard case .object(let members) = value else {
      return ParsedLine(
        idJSON: nil, idText: nil,
        request: .failure(ReplyError(.invalidJSON, "a request must be a JSON object")))
    }
    let id: (json: String, text: String)?
    do {
      id = try readID(members)
    } catch {
      return ParsedLine(idJSON: nil, idText: nil, request: .failure(error))
    }
    let request = Result { () throws(ReplyError) -> Request in
      try readRequest(members, maxPromptScalars: maxPromptScalars, trustedRoles: trustedRoles)
    }
    return ParsedLine(idJSON: id?.json, idText: id?.text, request: request)
  }

  /// Whether `bytes` are well-formed UTF-8.
  static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
    // ASCII fast path, then the standard library's validating decoder.
    if bytes.allSatisfy({ $0 < 0x80 }) { return true }
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    while true {
      switch decoder.decode(&iterator) {
      case .scalarValue: continue
      case .emptyInput: return true
      case .error: return false
      }
    }
  }

  /// The `id` member: a string or a number, echoed as sent; `null` or absent means none.
  private static func readID(_ members: [String: JSONValue]) throws(ReplyError) -> (
    json: String, text: String
  )? {
    switch members["id"] {
    case nil, .null?: return nil
    case .string(let text)?: return (JSONWriter.string(text), text)
    case .number(_, let text)?: return (text, text)
    default: throw ReplyError(.wrongType, "\"id\" must be a string or a number")
    }
  }

  private static func readRequest(
    _ members: [String: JSONValue], maxPromptScalars: Int, trustedRoles: Set<String>
  ) throws(ReplyError)
    -> Request
  {
    let op: String
    switch members["op"] {
    case nil, .null?: op = "score"
    case .string(let text)?: op = text
    default: throw ReplyError(.wrongType, "\"op\" must be a string")
    }
    switch op {
    case "score":
      return try readScore(members, maxPromptScalars: maxPromptScalars, trustedRoles: trustedRoles)
    case "health": return .health
    case "version": return .version
    case "stats":
      switch members["format"] {
      case nil, .null?, .string("json")?: return .stats(prometheus: false)
      case .string("prometheus")?: return .stats(prometheus: true)
      default: throw ReplyError(.wrongType, "\"format\" must be \"json\" or \"prometheus\"")
      }
    case "reload":
      switch members["token"] {
      case nil, .null?: return .reload(token: nil)
      case .string(let token)?: return .reload(token: token)
      default: throw ReplyError(.wrongType, "\"token\" must be a string")
      }
    default:
      let shown = op.count > 40 ? String(op.prefix(40)) + "…" : op
      throw ReplyError(.unknownOp, "unknown op \"\(shown)\" (score, health, version, stats, reload)")
    }
  }

  /// Judged messages one request may carry at most.
  package static let maxJudgedMessages = 64

  private static func readScore(
    _ members: [String: JSONValue], maxPromptScalars: Int, trustedRoles: Set<String>
  ) throws(ReplyError)
    -> Request
  {
    var messages: [JudgedMessage]?
    switch members["messages"] {
    case nil, .null?: break
    default:
      switch members["prompt"] {
      case nil, .null?:
        messages = try readMessages(
          members["messages"], maxPromptScalars: maxPromptScalars, trustedRoles: trustedRoles)
      default: throw ReplyError(.wrongType, "give either \"prompt\" or \"messages\", not both")
      }
    }
    let prompt: String
    switch members["prompt"] {
    case nil, .null?:
      guard messages != nil else { throw ReplyError(.missingPrompt, "the request has no \"prompt\"") }
      prompt = ""
    case .string(let text)?: prompt = text
    default: throw ReplyError(.wrongType, "\"prompt\" must be a string")
    }
    let client: String?
    switch members["client"] {
    case nil, .null?: client = nil
    case .string(let text)?: client = text
    default: throw ReplyError(.wrongType, "\"client\" must be a string")
    }
    let explain: Bool
    switch members["explain"] {
    case nil, .null?: explain = false
    case .bool(let flag)?: explain = flag
    default: throw ReplyError(.wrongType, "\"explain\" must be true or false")
    }
    if let messages { return .scoreMessages(messages: messages, client: client, explain: explain) }
    try checkLength(prompt, maxPromptScalars: maxPromptScalars, name: "the prompt")
    return .score(prompt: prompt, client: client, explain: explain)
  }

  /// `"messages"`: an array of `{"role", "content"}` objects. A message is judged unless its role
  /// is one of `trustedRoles` (compared in lower case) or it has no text; `content` is a string,
  /// `null`, or an array of parts whose `{"type":"text","text":…}` parts are joined by line breaks
  /// (other parts, such as images, are not read). `package`: `curvalid score` judges JSONL
  /// conversation records with it.
  ///
  /// - Throws: `.wrongType` for a malformed message, `.promptTooLong` for a judged message over
  ///   the limit, `.tooManyMessages` beyond `maxJudgedMessages`, `.missingPrompt` when none is judged.
  package static func readMessages(_ value: JSONValue?, maxPromptScalars: Int, trustedRoles: Set<String>)
    throws(ReplyError)
    -> [JudgedMessage]
  {
    guard case .array(let items)? = value else {
      throw ReplyError(.wrongType, "\"messages\" must be an array of {\"role\",\"content\"} objects")
    }
    var judged: [JudgedMessage] = []
    for (index, item) in items.enumerated() {
      guard case .object(let message) = item else {
        throw ReplyError(.wrongType, "messages[\(index)] must be an object")
      }
      guard case .string(let role)? = message["role"] else {
        throw ReplyError(.wrongType, "messages[\(index)].role must be a string")
      }
      let text: String
      switch message["content"] {
      case nil, .null?: continue
      case .string(let content)?: text = content
      case .array(let parts)?:
        var texts: [String] = []
        for part in parts {
          guard case .object(let fields) = part else {
            throw ReplyError(.wrongType, "messages[\(index)].content parts must be objects")
          }
          guard case .string("text")? = fields["type"] else { continue }
          guard case .string(let partText)? = fields["text"] else {
            throw ReplyError(
              .wrongType, "messages[\(index)].content: a text part's \"text\" must be a string")
          }
          texts.append(partText)
        }
        text = texts.joined(separator: "\n")
      default:
        throw ReplyError(.wrongType, "messages[\(index)].content must be a string, an array of parts or null")
      }
      if trustedRoles.contains(role.lowercased()) || text.unicodeScalars.allSatisfy(\.properties.isWhitespace)
      {
        continue
      }
      try checkLength(text, maxPromptScalars: maxPromptScalars, name: "messages[\(index)]")
      judged.append(JudgedMessage(index: index, role: role, text: text))
      if judged.count > maxJudgedMessages {
        throw ReplyError(
          .tooManyMessages,
          "the request has more than \(maxJudgedMessages) messages to judge; send it in parts")
      }
    }
    guard !judged.isEmpty else {
      throw ReplyError(
        .missingPrompt,
        "no message to judge: every message has a trusted role (\(trustedRoles.sorted().joined(separator: ", "))) "
          + "or no text"
      )
    }
    return judged
  }

  /// Checks that `text` is not blank and at most `maxPromptScalars` Unicode scalars long.
  private static func checkLength(_ text: String, maxPromptScalars: Int, name: String) throws(ReplyError) {
    if text.unicodeScalars.allSatisfy(\.properties.isWhitespace) {
      throw ReplyError(.emptyPrompt, "\(name) is empty")
    }
    var scalars = 0
    for _ in text.unicodeScalars {
      scalars += 1
      if scalars > maxPromptScalars {
        throw ReplyError(.promptTooLong, "\(name) is longer than \(maxPromptScalars) characters")
      }
    }
  }

  /// `{"id":…,"error":{…}}` plus a newline.
  static func errorReply(id: String?, _ error: ReplyError, extra: [(String, String)] = []) -> [UInt8] {
    var members: [(String, String)] = []
    if let id { members.append(("id", id)) }
    members.append(
      (
        "error",
        JSONWriter.object([
          ("code", JSONWriter.string(error.code.rawValue)), ("message", JSONWriter.string(error.message)),
        ])
      ))
    members += extra
    return line(members)
  }

  /// A reply object's members as one line.
  static func line(_ members: [(String, String)]) -> [UInt8] {
    Array((JSONWriter.object(members) + "\n").utf8)
  }

  /// The features as a JSON object text, in model order.
  static func featuresJSON(_ features: [Decision.Feature]) -> String {
    JSONWriter.object(features.map { ($0.name, JSONWriter.number($0.value)) })
  }

  /// The members of a decision reply, after `id`.
  package static func decisionMembers(_ decision: Decision, modelID: String) -> [(String, String)] {
    var members: [(String, String)] = [
      ("decision", JSONWriter.string(decision.verdict.rawValue)),
      ("score", JSONWriter.number(decision.score)),
      ("threshold", JSONWriter.number(decision.threshold)),
      ("model", JSONWriter.string(modelID)),
      ("tokens", "\(decision.tokens)"),
      ("features", featuresJSON(decision.features)),
    ]
    if let explanation = decision.explanation {
      let tokens = explanation.topTokens.map {
        JSONWriter.object([
          ("token", JSONWriter.string($0.token)), ("position", "\($0.position)"),
          ("value", JSONWriter.number($0.value)),
        ])
      }
      let distances = explanation.nearestBenignDistances.map(JSONWriter.number)
      members.append(
        (
          "explanation",
          JSONWriter.object([
            ("top_tokens", "[" + tokens.joined(separator: ",") + "]"),
            ("nearest_benign_distances", "[" + distances.joined(separator: ",") + "]"),
            ("reading", explanation.reading.map(JSONWriter.string) ?? "null"),
          ])
        ))
    }
    return members
  }
}
