/// The one error type of the command-line front end: what went wrong and how the process exits.
///
/// Usage errors (a bad flag, a missing argument) exit 64 (`EX_USAGE`); every other failure exits 1.
/// The message is one line, printed to standard error prefixed with `curvalid:`.
public struct CommandError: Error, CustomStringConvertible, Sendable {
  /// The kinds of failure, which decide the exit status.
  public enum Kind: Sendable {
    /// The command line itself is wrong: exit 64.
    case usage
    /// The command could not do its work: exit 1.
    case failure
  }

  /// Whether this is a usage error or a failure.
  public let kind: Kind
  /// One line for people.
  public let message: String

  /// A usage error (exit 64).
  public static func usage(_ message: String) -> CommandError {
    CommandError(kind: .usage, message: message)
  }

  /// A failure while working (exit 1).
  public static func failure(_ message: String) -> CommandError {
    CommandError(kind: .failure, message: message)
  }

  /// The process exit status for this error.
  public var exitCode: Int32 {
    switch kind {
    case .usage: 64
    case .failure: 1
    }
  }

  /// The message.
  public var description: String { message }
}
