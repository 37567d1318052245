/// A parsed JSON value: what a request line holds.
///
/// The service parses requests with its own bounded parser instead of Foundation's so that hostile
/// input cannot exhaust the stack (nesting depth is limited) and so that types are exact (a JSON
/// `true` is never the number 1). `package` so that `curvalid score` reads a record's `messages`
/// with the same parser as the service.
package enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  /// A number: its value and its source text (so integers echo back exactly).
  case number(Double, String)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  /// Why a line is not JSON: one line for the `invalid_json` reply.
  package struct SyntaxError: Error, Equatable {
    /// What is wrong and at which byte.
    package let message: String
  }

  /// Parses one complete JSON text from valid UTF-8 bytes.
  ///
  /// - Parameters:
  ///   - bytes: The text, already checked to be UTF-8.
  ///   - maxDepth: The deepest nesting of arrays and objects accepted.
  /// - Throws: `SyntaxError` with the byte offset of the problem.
  /// - Complexity: O(n) in the byte count.
  package static func parse(_ bytes: ArraySlice<UInt8>, maxDepth: Int = 32) throws(SyntaxError) -> JSONValue {
    var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
    parser.skipWhitespace()
    let value = try parser.value(depth: 0)
    parser.skipWhitespace()
    guard parser.atEnd else { throw parser.error("unexpected text after the JSON value") }
    return value
  }
}

/// A recursive-descent parser over UTF-8 bytes (RFC 8259), depth-limited.
private struct JSONParser {
  let bytes: ArraySlice<UInt8>
  let maxDepth: Int
  var index: Int

  init(bytes: ArraySlice<UInt8>, maxDepth: Int) {
    self.bytes = bytes
    self.maxDepth = maxDepth
    self.index = bytes.startIndex
  }

  var atEnd: Bool { index >= bytes.endIndex }

  func error(_ message: String) -> JSONValue.SyntaxError {
    JSONValue.SyntaxError(message: "\(message) at byte \(index - bytes.startIndex)")
  }

  mutating func skipWhitespace() {
    while index < bytes.endIndex {
      switch bytes[index] {
      case 0x20, 0x09, 0x0A, 0x0D: index += 1
      default: return
      }
    }
  }

  mutating func value(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
    guard index < bytes.endIndex else { throw error("unexpected end of input") }
    switch bytes[index] {
    case UInt8(ascii: "{"): return try object(depth: depth + 1)
    case UInt8(ascii: "["): return try array(depth: depth + 1)
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): try literal("true"); return .bool(true)
    case UInt8(ascii: "f"): try literal("false"); return .bool(false)
    case UInt8(ascii: "n"): try literal("null"); return .null
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw error("unexpected character")
    }
  }

  mutating func literal(_ word: StaticString) throws(JSONValue.SyntaxError) {
    let count = word.utf8CodeUnitCount
    guard bytes.endIndex - index >= count else { throw error("unexpected end of input") }
    let matches = word.withUTF8Buffer { expected in
      expected.indices.allSatisfy { bytes[index + $0] == expected[$0] }
    }
    guard matches else { throw error("invalid literal") }
    index += count
  }

  mutating func object(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
    guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
    index += 1
    var members: [String: JSONValue] = [:]
    skipWhitespace()
    if index < bytes.endIndex, bytes[index] == UInt8(ascii: "}") {
      index += 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") else {
        throw error("expected a member name")
      }
      let key = try string()
      skipWhitespace()
      guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
      index += 1
      skipWhitespace()
      members[key] = try value(depth: depth)
      skipWhitespace()
      guard index < bytes.endIndex else { throw error("unexpected end of input") }
      if bytes[index] == UInt8(ascii: ",") {
        index += 1
      } else if bytes[index] == UInt8(ascii: "}") {
        index += 1
        return .object(members)
      } else {
        throw error("expected ',' or '}'")
      }
    }
  }

  mutating func array(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
    guard depth <= maxDepth else { throw error("nesting deeper than \(maxDepth)") }
    index += 1
    var elements: [JSONValue] = []
    skipWhitespace()
    if index < bytes.endIndex, bytes[index] == UInt8(ascii: "]") {
      index += 1
      return .array(elements)
    }
    while true {
      skipWhitespace()
      elements.append(try value(depth: depth))
      skipWhitespace()
      guard index < bytes.endIndex else { throw error("unexpected end of input") }
      if bytes[index] == UInt8(ascii: ",") {
        index += 1
      } else if bytes[index] == UInt8(ascii: "]") {
        index += 1
        return .array(elements)
      } else {
        throw error("expected ',' or ']'")
      }
    }
  }

  mutating func number() throws(JSONValue.SyntaxError) -> JSONValue {
    let start = index
    func digits(_ parser: inout JSONParser) -> Int {
      var count = 0
      while parser.index < parser.bytes.endIndex, (0x30...0x39).contains(parser.bytes[parser.index]) {
        parser.index += 1
        count += 1
      }
      return count
    }
    if bytes[index] == UInt8(ascii: "-") { index += 1 }
    guard index < bytes.endIndex else { throw error("invalid number") }
    if bytes[index] == UInt8(ascii: "0") {
      index += 1
    } else if digits(&self) == 0 {
      throw error("invalid number")
    }
    if index < bytes.endIndex, bytes[index] == UInt8(ascii: ".") {
      index += 1
      guard digits(&self) > 0 else { throw error("invalid number") }
    }
    if index < bytes.endIndex, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
      index += 1
      if index < bytes.endIndex, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
        index += 1
      }
      guard digits(&self) > 0 else { throw error("invalid number") }
    }
    let text = String(decoding: bytes[start..<index], as: UTF8.self)
    guard let value = Double(text) else { throw error("invalid number") }
    return .number(value, text)
  }

  mutating func hexQuad() throws(JSONValue.SyntaxError) -> UInt32 {
    guard bytes.endIndex - index >= 4 else { throw error("truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[index]
      let digit: UInt8
      switch byte {
      case 0x30...0x39: digit = byte - 0x30
      case 0x41...0x46: digit = byte - 0x41 + 10
      case 0x61...0x66: digit = byte - 0x61 + 10
      default: throw error("invalid \\u escape")
      }
      value = value << 4 | UInt32(digit)
      index += 1
    }
    return value
  }

  mutating func string() throws(JSONValue.SyntaxError) -> String {
    index += 1  // opening quote
    var runStart = index
    var result = ""
    while index < bytes.endIndex {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\"") {
        result += String(decoding: bytes[runStart..<index], as: UTF8.self)
        index += 1
        return result
      }
      if byte < 0x20 { throw error("control character in string") }
      if byte != UInt8(ascii: "\\") {
        index += 1
        continue
      }
      result += String(decoding: bytes[runStart..<index], as: UTF8.self)
      index += 1
      guard index < bytes.endIndex else { throw error("unexpected end of input") }
      let escape = bytes[index]
      index += 1
      switch escape {
      case UInt8(ascii: "\""): result += "\""
      case UInt8(ascii: "\\"): result += "\\"
      case UInt8(ascii: "/"): result += "/"
      case UInt8(ascii: "b"): result += "\u{08}"
      case UInt8(ascii: "f"): result += "\u{0C}"
      case UInt8(ascii: "n"): result += "\n"
      case UInt8(ascii: "r"): result += "\r"
      case UInt8(ascii: "t"): result += "\t"
      case UInt8(ascii: "u"):
        var code = try hexQuad()
        if (0xD800...0xDBFF).contains(code) {
          guard bytes.endIndex - index >= 6, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u")
          else { throw error("unpaired surrogate") }
          index += 2
          let low = try hexQuad()
          guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(code) {
          throw error("unpaired surrogate")
        }
        guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
        result.unicodeScalars.append(scalar)
      default: throw error("invalid escape")
      }
      runStart = index
    }
    throw error("unterminated string")
  }
}

/// Building JSON reply text (also used by the command line's JSON output).
package enum JSONWriter {
  /// `text` as a JSON string literal, quotes and control characters escaped.
  package static func string(_ text: String) -> String {
    var result = "\""
    result.reserveCapacity(text.utf8.count + 2)
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
        let hex = String(scalar.value, radix: 16)
        result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: result.unicodeScalars.append(scalar)
      }
    }
    result += "\""
    return result
  }

  /// A finite number (shortest round-tripping text); non-finite values become `null`.
  package static func number(_ value: Float) -> String { value.isFinite ? "\(value)" : "null" }

  /// A finite number; non-finite values become `null`.
  package static func number(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

  /// Milliseconds rounded to microseconds, for latency fields.
  static func milliseconds(_ value: Double) -> String {
    number((value * 1_000).rounded() / 1_000)
  }

  /// An object from already-rendered member values, in the given order.
  package static func object(_ members: [(String, String)]) -> String {
    "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
  }
}
