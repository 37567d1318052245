import Foundation

/// When `append` returns.
public enum AuditDurability: String, Sendable {
  /// After the row's transaction committed with `synchronous=FULL` (the default).
  case durable
  /// As soon as the row is queued; a background writer commits with `synchronous=NORMAL`. A crash
  /// can lose the rows of the last moments; `flush` and `close` drain the queue.
  case async
}

/// Automatic retention: the oldest rows beyond either limit are deleted behind a checkpoint.
public struct AuditRetention: Sendable, Equatable {
  /// Delete rows older than this many seconds.
  public var maximumAge: TimeInterval?
  /// Keep at most this many rows.
  public var maximumRows: Int?
  /// How often the writer applies the limits (also once when the log opens).
  public var interval: TimeInterval

  /// Creates a retention policy.
  public init(maximumAge: TimeInterval? = nil, maximumRows: Int? = nil, interval: TimeInterval = 3600) {
    self.maximumAge = maximumAge
    self.maximumRows = maximumRows
    self.interval = interval
  }
}

/// How to open and run an audit log.
public struct AuditLogConfiguration: Sendable, Equatable {
  /// The SQLite file (created when missing; its directory must exist).
  public var path: String
  /// When `append` returns.
  public var durability: AuditDurability
  /// Store the prompt text (otherwise only its SHA-256 is kept; `promptText` is dropped).
  public var storePromptText: Bool
  /// How long the writer waits for more rows after the first one of a batch arrives (0: commit at
  /// once; rows arriving during a commit still share the next transaction).
  public var groupCommitInterval: TimeInterval
  /// The most rows one transaction commits.
  public var maximumBatch: Int
  /// The most rows that may wait to be written; further appends throw `.overloaded`.
  public var maximumPending: Int
  /// How long a commit waits for another connection's lock before failing with `.busy`.
  public var busyTimeoutMilliseconds: Int
  /// A cap on the database size (rounded down to pages); appends beyond it throw `.full`.
  public var maximumDatabaseBytes: Int64?
  /// Automatic retention, or `nil` to keep everything.
  public var retention: AuditRetention?
  /// The key of the hash chain (`AuditChainKey`), or `nil` for the unkeyed SHA-256 chain. A new
  /// log is created keyed with it; an existing log must have been created with the same key.
  public var chainKey: AuditChainKey?

  /// Creates a configuration with the documented defaults.
  public init(
    path: String, durability: AuditDurability = .durable, storePromptText: Bool = false,
    groupCommitInterval: TimeInterval = 0.002, maximumBatch: Int = 256, maximumPending: Int = 65536,
    busyTimeoutMilliseconds: Int = 2000, maximumDatabaseBytes: Int64? = nil, retention: AuditRetention? = nil,
    chainKey: AuditChainKey? = nil
  ) {
    self.chainKey = chainKey
    self.path = path
    self.durability = durability
    self.storePromptText = storePromptText
    self.groupCommitInterval = groupCommitInterval
    self.maximumBatch = maximumBatch
    self.maximumPending = maximumPending
    self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
    self.maximumDatabaseBytes = maximumDatabaseBytes
    self.retention = retention
  }
}
