/// The one error type of the `Tokenization` module.
public struct TokenizationError: Error, CustomStringConvertible, Sendable {
  /// What went wrong, as a closed set of cases.
  public enum Code: String, Sendable {
    /// A vocabulary file does not exist or cannot be read.
    case fileNotFound
    /// A vocabulary has a duplicate or empty token, is empty, or lacks a required special token.
    case invalidVocabulary
    /// Input bytes are not well-formed UTF-8.
    case invalidUTF8
  }

  /// The kind of failure.
  public let code: Code
  /// A one-line explanation with context (path, token, byte offset).
  public let message: String

  /// Creates an error with a code and a message.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.rawValue): \(message)" }
}
