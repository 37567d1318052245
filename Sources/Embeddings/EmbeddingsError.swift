/// The one error type of the `Embeddings` module.
///
/// A `code` says what kind of failure happened (callers branch on it); the `message` is one line
/// for people, naming the file and the offending item where there is one.
public struct EmbeddingsError: Error, CustomStringConvertible, Sendable {
  /// The kinds of failure the module reports.
  public enum Code: String, Sendable {
    /// The file does not exist.
    case fileNotFound
    /// The file exists but cannot be opened, inspected, mapped or written.
    case unreadable
    /// The safetensors header (length prefix, JSON, metadata) is malformed.
    case invalidHeader
    /// A tensor entry in the header is malformed or points outside its data.
    case invalidTensor
    /// A tensor uses an element type this reader does not convert.
    case unsupportedDType
    /// A tensor the caller asked for is not in the file.
    case missingTensor
    /// A tensor has a different shape than the caller expected.
    case shapeMismatch
    /// A model configuration is inconsistent or incomplete.
    case invalidConfiguration
    /// A caller passed values the operation cannot accept.
    case invalidInput
  }

  /// What kind of failure this is.
  public let code: Code

  /// A one-line explanation, including the file path where one is involved.
  public let message: String

  /// Creates an error.
  ///
  /// - Parameters:
  ///   - code: The kind of failure.
  ///   - message: A one-line explanation for people.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// The message, so that printing the error shows the explanation.
  public var description: String { message }
}
