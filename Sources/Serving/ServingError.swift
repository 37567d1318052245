#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The one error type of the `Serving` module.
///
/// A struct with a closed `Code` and a one-line message that names the operation and, for system
/// calls, the `errno` text.
public struct ServingError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The kinds of failure.
  public enum Code: String, Sendable, Equatable {
    /// The configuration is unusable (bad address, limit out of range, missing token file).
    case invalidConfiguration
    /// A listening address or Unix socket path is already in use by a live listener.
    case addressInUse
    /// A system call on a socket, pipe or file failed.
    case system
    /// A model could not be loaded or did not pass validation; the old model keeps serving.
    case reloadFailed
    /// The operation needs a state the server is not in (e.g. `start` twice).
    case invalidState
    /// The audit recorder failed.
    case audit
  }

  /// What kind of failure this is.
  public let code: Code
  /// One line for people.
  public let message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// A `.system` error for the failed call `operation`, with the current `errno` text.
  ///
  /// - Parameters:
  ///   - operation: What was being done, e.g. `bind 127.0.0.1:7433`.
  ///   - number: The `errno` value (defaults to the current one).
  static func system(_ operation: String, errno number: Int32 = errno) -> ServingError {
    ServingError(.system, "\(operation): \(String(cString: strerror(number))) (errno \(number))")
  }

  /// The message.
  public var description: String { message }
}
