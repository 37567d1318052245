/// The one error type of the `Geometry` module: bad input to a curvature, neighbour or LID call.
///
/// Programmer errors (a buffer shorter than its stated shape) are preconditions; everything a caller
/// can get wrong with well-formed values (too many neighbours, mismatched dimensions, an empty
/// reference set, non-finite coordinates) is thrown as a `GeometryError` carrying a code and a
/// message that names the offending values.
public struct GeometryError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What kind of input was refused.
  public enum Code: String, Sendable, Equatable, CaseIterable {
    /// `k` is below the estimator's minimum or above the number of available neighbours.
    case invalidNeighborCount
    /// Queries and reference points have different dimensions, or an exclusion list has the wrong
    /// length or names a row that does not exist.
    case dimensionMismatch
    /// The reference set has no points.
    case emptyReference
    /// A coordinate or distance is NaN or infinite.
    case nonFiniteValue
    /// Distances handed to an estimator are negative or not in ascending order.
    case invalidDistances
    /// Any other argument out of its documented range (for example a non-positive block size).
    case invalidArgument
  }

  /// What kind of input was refused.
  public let code: Code
  /// A one-line explanation naming the offending values.
  public let message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// `"<code>: <message>"`.
  public var description: String { "\(code.rawValue): \(message)" }
}
