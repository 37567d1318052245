import Foundation

/// One exported row as a single-line JSON object with a fixed key order (docs/audit-log.md, "Export").
enum JSONLine {
  static func line(for row: StoredRecord) -> String {
    let r = row.record
    var out = "{"
    var first = true
    func key(_ name: String) {
      if !first { out += "," }
      first = false
      out += "\"\(name)\":"
    }
    func string(_ name: String, _ value: String?) {
      key(name)
      if let value { out += quoted(value) } else { out += "null" }
    }
    func number(_ name: String, _ value: Double?) {
      key(name)
      if let value, value.isFinite { out += "\(value)" } else { out += "null" }
    }
    func integer(_ name: String, _ value: Int64?) {
      key(name)
      out += value.map { "\($0)" } ?? "null"
    }
    integer("id", row.id)
    string("time", timestamp(row.timeMilliseconds))
    integer("time_ms", row.timeMilliseconds)
    string("request_id", r.requestID)
    string("client", r.client)
    string("peer", r.peer)
    string("prompt_sha256", r.promptSHA256)
    string("prompt_text", r.promptText)
    integer("tokens", r.tokens.map(Int64.init))
    number("score", r.score)
    number("threshold", r.threshold)
    string("decision", r.decision)
    key("features")
    out += features(r.featuresJSON)
    string("model", r.modelID)
    number("latency_ms", r.latencyMilliseconds)
    string("error", r.error)
    integer("shadow_of", r.shadowOf)
    integer("message_index", r.messageIndex.map(Int64.init))
    string("role", r.role)
    string("prev_hash", row.previousHash)
    string("hash", row.hash)
    out += "}"
    return out
  }

  /// The features as a nested JSON value when the stored text is valid JSON, else as a string.
  private static func features(_ text: String?) -> String {
    guard let text else { return "null" }
    guard (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) != nil else {
      return quoted(text)
    }
    // Outside strings a raw line break is only whitespace; inside strings JSON forbids it.
    return text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
  }

  /// A JSON string literal.
  static func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case "\u{2028}": out += "\\u2028"
      case "\u{2029}": out += "\\u2029"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }

  /// `2024-05-01T12:34:56.789Z` from UTC milliseconds.
  static func timestamp(_ milliseconds: Int64) -> String {
    let seconds = milliseconds.quotientAndRemainder(dividingBy: 1000)
    var whole = seconds.quotient
    var millis = seconds.remainder
    if millis < 0 {
      whole -= 1
      millis += 1000
    }
    var t = time_t(whole)
    var parts = tm()
    guard gmtime_r(&t, &parts) != nil else { return "\(milliseconds)" }
    func pad(_ v: Int32, _ width: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return
      "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
      + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
  }
}

extension StoredRecord {
  /// The row as one line of JSON, in the export format (docs/audit-log.md, "Export").
  public var jsonLine: String { JSONLine.line(for: self) }
}
