/// Why fine-tuning an encoder layer failed.
public struct EncoderTuningError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The kind of failure.
  public enum Code: String, Sendable {
    /// Inputs of the wrong shape, or an empty training set.
    case invalidInput
    /// Settings out of range.
    case invalidConfiguration
    /// Training diverged (a non-finite loss).
    case diverged
  }

  /// The kind of failure.
  public let code: Code
  /// One line for the operator.
  public let message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// `code: message`.
  public var description: String { "\(code.rawValue): \(message)" }
}
