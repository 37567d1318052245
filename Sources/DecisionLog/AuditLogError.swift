/// The one error type of the `DecisionLog` module.
///
/// `code` says what kind of failure happened (callers branch on it, e.g. the service's policy for an
/// unwritable log); `sqliteCode` is SQLite's extended result code when the failure came from SQLite
/// (0 otherwise); `message` is one line for people, naming the database and the operation.
public struct AuditLogError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The kinds of failure the audit log reports.
  public enum Code: String, Sendable, Equatable {
    /// The database file cannot be opened or created (missing directory, not a file, no WAL support).
    case open
    /// Another connection holds the lock longer than the busy timeout (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    case busy
    /// The database, its directory or its file system is read-only, or the file was moved or
    /// replaced while open (`SQLITE_READONLY`, `SQLITE_PERM`).
    case readOnly
    /// The disk is full or the configured size cap is reached (`SQLITE_FULL`).
    case full
    /// The file is damaged or is not a database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
    case corrupt
    /// The file is a database but not an audit log of a version this code understands.
    case schema
    /// An operating-system I/O error (`SQLITE_IOERR`).
    case io
    /// The hash chain does not verify (see `VerificationReport`).
    case verification
    /// The log's chain is keyed and no key or another key was given, or a key was given for a log
    /// whose chain is not keyed (`AuditChainKey`).
    case key
    /// The caller passed a value the log cannot store or an operation that does not apply.
    case invalidInput
    /// The log was closed before the operation.
    case closed
    /// Too many rows are waiting to be written (`AuditLogConfiguration.maximumPending`).
    case overloaded
    /// Any other SQLite failure (constraint, misuse, internal error).
    case sqlite
  }

  /// What kind of failure this is.
  public let code: Code

  /// SQLite's extended result code, or 0 when the error did not come from SQLite.
  public let sqliteCode: Int32

  /// A one-line explanation including the database path and the operation.
  public let message: String

  /// Creates an error.
  ///
  /// - Parameters:
  ///   - code: The kind of failure.
  ///   - sqliteCode: SQLite's extended result code, 0 when not from SQLite.
  ///   - message: A one-line explanation for people.
  public init(_ code: Code, sqliteCode: Int32 = 0, _ message: String) {
    self.code = code
    self.sqliteCode = sqliteCode
    self.message = message
  }

  /// The message, so that printing the error shows the explanation.
  public var description: String { message }
}
