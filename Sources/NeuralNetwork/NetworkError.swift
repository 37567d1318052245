/// The one error type of the `NeuralNetwork` module: a machine-readable code and a one-line message.
///
/// Bad input (tensors to load, labels, lengths, data sets) throws a `NetworkError`; broken
/// invariants inside the library (a gradient of the wrong shape handed to `backward`) are
/// preconditions.
public struct NetworkError: Error, Equatable, Sendable, CustomStringConvertible {
  /// What went wrong, as a small closed set.
  public enum Code: String, Sendable, Equatable {
    /// A tensor the network needs is not among the supplied ones.
    case missingTensor = "missing_tensor"
    /// A supplied tensor has a different shape (or value count) than the network's.
    case shapeMismatch = "shape_mismatch"
    /// The same tensor name was supplied twice.
    case duplicateTensor = "duplicate_tensor"
    /// An input batch, label, weight or length is out of range or inconsistent.
    case invalidInput = "invalid_input"
  }

  /// The error's code.
  public let code: Code
  /// A one-line, human-readable explanation with context.
  public let message: String

  /// Creates an error.
  /// - Parameters:
  ///   - code: The error's code.
  ///   - message: A one-line explanation.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// `code: message`.
  public var description: String { "\(code.rawValue): \(message)" }
}
