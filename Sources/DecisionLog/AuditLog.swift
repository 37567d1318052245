import Foundation

/// The SQLite audit log: one hash-chained row per decision, committed by a single writer in batches.
///
/// Thread safety: `AuditLog` is `Sendable`; call it from any thread or task. Appends go to a queue
/// served by one dedicated writer thread that owns the write transactions; `label` and
/// `applyRetention` share the same connection under a lock, so they are serialised with commits.
/// The static readers (`verify`, `tail`, `export`, `labels`) open their own read-only connection
/// and may run while the log is being written (WAL mode).
///
/// Durability: in `.durable` mode `append` returns after the row's transaction committed with
/// `synchronous=FULL`; rows that arrive while a commit runs share the next transaction (group
/// commit). In `.async` mode `append` returns once the row is queued.
///
/// Failures are never silent: a failed commit throws from every durable `append` of the batch; in
/// async mode it is thrown by the next `append` or `flush` and counted in `statistics().lostRows`.
public final class AuditLog: Sendable {
  /// The id `append` returns in async mode, where the id is not known yet (real ids start at 1).
  public static let pendingID: Int64 = 0
  /// The schema version this build writes (docs/audit-log.md, "Schema").
  public static let schemaVersion = AuditSchema.version

  /// The configuration the log was opened with.
  public let configuration: AuditLogConfiguration
  /// The schema version the file had when this instance upgraded it to `AuditSchema.version`
  /// while opening (docs/audit-log.md, "Schema"), or `nil` for a new or current log.
  public let upgradedFromSchemaVersion: Int?

  private let writer: AuditLogWriter

  /// Opens (creating or checking the schema) and starts the writer.
  ///
  /// Sets WAL journal mode and `synchronous=FULL` (durable) or `NORMAL` (async), the busy timeout
  /// and the size cap; applies the configured retention once.
  /// - Throws: `.readOnly` when the file cannot be written, `.schema` when it is not an audit log
  ///   of this version, `.key` when the log's chain is keyed and `chainKey` is missing or another
  ///   key (or a key is given for a log with an unkeyed chain), `.invalidInput` for a bad
  ///   configuration, other codes from SQLite.
  public init(configuration: AuditLogConfiguration) throws(AuditLogError) {
    guard configuration.maximumBatch >= 1, configuration.maximumPending >= 1,
      configuration.groupCommitInterval >= 0, configuration.groupCommitInterval.isFinite,
      configuration.busyTimeoutMilliseconds >= 0
    else {
      throw AuditLogError(
        .invalidInput,
        "audit log configuration: maximumBatch and maximumPending must be ≥ 1, intervals and timeouts ≥ 0")
    }
    let path = configuration.path
    let connection = try SQLiteConnection(path: path, mode: .readWriteCreate)
    guard !connection.isReadOnly else {
      throw AuditLogError(
        .readOnly, sqliteCode: 8,
        "audit log \(path) is read-only (file permissions, immutable file or read-only file system)")
    }
    connection.setBusyTimeout(milliseconds: configuration.busyTimeoutMilliseconds)
    let journal = try connection.statement("PRAGMA journal_mode = WAL")
    let mode = try journal.step(context: "set WAL journal mode") ? journal.text(0) : nil
    journal.reset()
    guard mode?.lowercased() == "wal" else {
      throw AuditLogError(
        .open, "audit log \(path): WAL journal mode is unavailable (got \(mode ?? "nothing"))")
    }
    let synchronous = configuration.durability == .durable ? "FULL" : "NORMAL"
    try connection.execute("PRAGMA synchronous = \(synchronous)", context: "set synchronous")
    if let bytes = configuration.maximumDatabaseBytes {
      let size = try connection.statement("PRAGMA page_size")
      let pageSize = try size.step(context: "read page size") ? size.integer(0) ?? 4096 : 4096
      size.reset()
      let pages = max(1, bytes / max(pageSize, 512))
      let cap = try connection.statement("PRAGMA max_page_count = \(pages)")
      _ = try cap.step(context: "set the size cap")
      cap.reset()
    }
    upgradedFromSchemaVersion = try AuditSchema.prepare(connection, key: configuration.chainKey)
    self.configuration = configuration
    writer = AuditLogWriter(configuration: configuration, connection: connection)
    if let retention = configuration.retention {
      _ = try applyRetention(maximumAge: retention.maximumAge, maximumRows: retention.maximumRows)
    }
    writer.start()
  }

  deinit { writer.close() }

  /// Logs a decision.
  ///
  /// - Returns: the row id in `.durable` mode, once the row's transaction committed;
  ///   `AuditLog.pendingID` in `.async` mode, once queued. Cancelling the task does not withdraw
  ///   a queued row.
  /// - Throws: `.invalidInput` for a bad record; the commit's error (`.readOnly`, `.full`,
  ///   `.busy`, `.io`, …); `.overloaded`; `.closed`.
  public func append(_ record: AuditRecord) async throws(AuditLogError) -> Int64 {
    let fields = try DecisionFields(record, storePromptText: configuration.storePromptText)
    guard configuration.durability == .durable else {
      try writer.enqueue(PendingRow(fields: fields, completion: nil))
      return Self.pendingID
    }
    let writer = self.writer
    let result: Result<Int64, AuditLogError> = await withCheckedContinuation { continuation in
      do throws(AuditLogError) {
        try writer.enqueue(PendingRow(fields: fields) { continuation.resume(returning: $0) })
      } catch {
        continuation.resume(returning: .failure(error))
      }
    }
    return try result.get()
  }

  /// Logs a decision, blocking the calling thread like `append` suspends (never call it from the
  /// writer's completion handlers).
  ///
  /// - Returns: the row id (durable mode) or `AuditLog.pendingID` (async mode).
  /// - Throws: as `append`.
  public func appendAndWait(_ record: AuditRecord) throws(AuditLogError) -> Int64 {
    let fields = try DecisionFields(record, storePromptText: configuration.storePromptText)
    guard configuration.durability == .durable else {
      try writer.enqueue(PendingRow(fields: fields, completion: nil))
      return Self.pendingID
    }
    let box = ResultBox()
    try writer.enqueue(PendingRow(fields: fields) { box.fulfil($0) })
    return try box.wait().get()
  }

  /// Logs a decision and calls `completion` on the writer thread once its fate is known, in both
  /// modes: the row id after the commit, or the error. Keep `completion` short.
  public func append(
    _ record: AuditRecord, completion: @escaping @Sendable (Result<Int64, AuditLogError>) -> Void
  ) {
    do throws(AuditLogError) {
      let fields = try DecisionFields(record, storePromptText: configuration.storePromptText)
      try writer.enqueue(PendingRow(fields: fields, completion: completion))
    } catch {
      completion(.failure(error))
    }
  }

  /// Waits until everything queued so far is committed (or failed), e.g. at shutdown.
  ///
  /// - Throws: a failed commit of async-mode rows whose callers had already returned.
  public func flush() throws(AuditLogError) {
    try writer.flush()
  }

  /// Drains the queue, stops the writer and closes the database. Later appends throw `.closed`.
  public func close() {
    writer.close()
  }

  /// The log's counters.
  public func statistics() -> AuditLogStatistics {
    writer.statistics()
  }

  /// Labels a committed row for retraining (a later label replaces an earlier one).
  ///
  /// - Parameters:
  ///   - id: A decision row with stored prompt text.
  ///   - label: `benign` or `adversarial`.
  ///   - note: The operator's note.
  /// - Throws: `.invalidInput` when the row does not exist, has no stored text, or the label is
  ///   neither value; SQLite errors.
  public func label(id: Int64, label: String, note: String? = nil) throws(AuditLogError) {
    try writer.withConnection { c throws(AuditLogError) in
      try AuditLogStore.label(c, id: id, label: label, note: note, now: Date())
    }
  }

  /// Deletes the oldest rows beyond either limit and records a checkpoint in the same transaction,
  /// so that `verify` keeps passing. The rows to delete are verified first.
  ///
  /// - Parameters:
  ///   - maximumAge: Delete rows older than this many seconds (a prefix of ids: the rows before the
  ///     first row that is young enough).
  ///   - maximumRows: Keep at most this many rows.
  /// - Returns: The number of rows deleted.
  /// - Throws: `.verification` when the rows to delete do not verify; SQLite errors.
  @discardableResult
  public func applyRetention(maximumAge: TimeInterval?, maximumRows: Int?) throws(AuditLogError) -> Int {
    try writer.withConnection { c throws(AuditLogError) in
      try AuditLogStore.applyRetention(
        c, maximumAge: maximumAge, maximumRows: maximumRows, now: Date(), key: configuration.chainKey)
    }
  }
}

/// One result handed from the writer thread to a blocked caller.
private final class ResultBox: @unchecked Sendable {
  // `result` is written once before `semaphore.signal()` and read after `wait()`.
  private var result: Result<Int64, AuditLogError>?
  private let semaphore = DispatchSemaphore(value: 0)

  func fulfil(_ value: Result<Int64, AuditLogError>) {
    result = value
    semaphore.signal()
  }

  func wait() -> Result<Int64, AuditLogError> {
    semaphore.wait()
    return result ?? .failure(AuditLogError(.closed, "audit log closed before the row was written"))
  }
}
