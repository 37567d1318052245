import Foundation

/// A row waiting for the writer, with whoever waits for its id.
struct PendingRow: Sendable {
  var fields: DecisionFields
  var completion: (@Sendable (Result<Int64, AuditLogError>) -> Void)?
}

/// The single writer behind an `AuditLog`: a queue of pending rows and one thread that commits them
/// in batches (group commit).
///
/// Thread safety (why `@unchecked Sendable` is sound): the queue, the counters and the lifecycle
/// flags are only touched while holding `condition`; the SQLite connection is only touched while
/// holding `connectionLock`. The writer thread never holds both (it takes a batch under `condition`,
/// releases it, then commits under `connectionLock`), and no other path takes `condition` while
/// holding `connectionLock`, so the two locks cannot deadlock.
final class AuditLogWriter: @unchecked Sendable {
  private let configuration: AuditLogConfiguration

  private let condition = NSCondition()
  private var queue: [PendingRow] = []
  private var inFlight = 0
  private var lastBatchSize = 0
  private var urgentRequests = 0
  private var closing = false
  private var started = false
  private var finished = false
  private var committedRows: Int64 = 0
  private var failedCommits = 0
  private var lostRows = 0
  private var unreportedFailure: AuditLogError?
  private var nextRetention: Date
  private var writerThread: Thread?

  private let connectionLock = NSLock()
  private var connection: SQLiteConnection?

  init(configuration: AuditLogConfiguration, connection: SQLiteConnection) {
    self.configuration = configuration
    self.connection = connection
    nextRetention = Date(timeIntervalSinceNow: configuration.retention?.interval ?? .infinity)
  }

  /// Starts the writer thread.
  func start() {
    condition.lock()
    started = true
    condition.unlock()
    let thread = Thread { [self] in run() }
    thread.name = "curvalid.audit-writer"
    condition.lock()
    writerThread = thread
    condition.unlock()
    thread.start()
  }

  /// Queues a row.
  ///
  /// - Throws: `.closed` after `close`; `.overloaded` when `maximumPending` rows wait; in async mode,
  ///   a commit failure not yet reported to anyone (the row is then not queued).
  func enqueue(_ row: PendingRow) throws(AuditLogError) {
    condition.lock()
    defer { condition.unlock() }
    guard !closing else { throw AuditLogError(.closed, "audit log \(configuration.path) is closed") }
    if let failure = unreportedFailure, row.completion == nil {
      unreportedFailure = nil
      throw failure
    }
    guard queue.count + inFlight < configuration.maximumPending else {
      throw AuditLogError(
        .overloaded,
        "audit log \(configuration.path): \(configuration.maximumPending) rows are already waiting")
    }
    queue.append(row)
    condition.broadcast()
  }

  /// Waits until every row queued before the call is committed or failed.
  ///
  /// - Throws: a commit failure of rows whose callers had already returned (async mode).
  func flush() throws(AuditLogError) {
    condition.lock()
    precondition(Thread.current !== writerThread, "AuditLog.flush called from an append completion handler")
    urgentRequests += 1
    condition.broadcast()
    while (!queue.isEmpty || inFlight > 0) && started && !finished { condition.wait() }
    urgentRequests -= 1
    let failure = unreportedFailure
    unreportedFailure = nil
    condition.unlock()
    if let failure { throw failure }
  }

  /// Drains the queue, stops the writer thread and closes the connection. Idempotent.
  func close() {
    condition.lock()
    precondition(Thread.current !== writerThread, "AuditLog.close called from an append completion handler")
    closing = true
    condition.broadcast()
    while started && !finished { condition.wait() }
    condition.unlock()
    connectionLock.lock()
    connection = nil
    connectionLock.unlock()
  }

  func statistics() -> AuditLogStatistics {
    condition.lock()
    defer { condition.unlock() }
    return AuditLogStatistics(
      committedRows: committedRows, pending: queue.count + inFlight, failedCommits: failedCommits,
      lostRows: lostRows)
  }

  /// Runs `body` with the connection, serialised with the writer's commits.
  func withConnection<T>(_ body: (SQLiteConnection) throws(AuditLogError) -> T) throws(AuditLogError) -> T {
    connectionLock.lock()
    defer { connectionLock.unlock() }
    guard let connection else { throw AuditLogError(.closed, "audit log \(configuration.path) is closed") }
    return try body(connection)
  }

  private func run() {
    while true {
      condition.lock()
      let wasIdle = queue.isEmpty
      while queue.isEmpty && !closing { condition.wait() }
      if queue.isEmpty {
        finished = true
        condition.broadcast()
        condition.unlock()
        return
      }
      let batchLimit = configuration.maximumBatch
      if wasIdle, configuration.groupCommitInterval > 0 {
        // Linger so that rows arriving together share one transaction, but only until as many rows
        // wait as the previous batch held (its callers are likely coming back): a lone caller never
        // waits, a steady group of N callers waits for the N-th. Rows that queued while the previous
        // commit ran are committed at once: they have waited already.
        let target = min(batchLimit, max(1, lastBatchSize))
        let deadline = Date(timeIntervalSinceNow: configuration.groupCommitInterval)
        while queue.count < target, urgentRequests == 0, !closing, condition.wait(until: deadline) {}
      }
      let count = min(queue.count, batchLimit)
      let batch: [PendingRow]
      if count == queue.count {
        batch = queue
        queue.removeAll(keepingCapacity: true)
      } else {
        batch = Array(queue.prefix(count))
        queue.removeFirst(count)
      }
      inFlight = count
      lastBatchSize = count
      condition.unlock()

      let result: Result<[Int64], AuditLogError>
      do throws(AuditLogError) {
        result = .success(
          try withConnection { c throws(AuditLogError) in
            try AuditLogStore.insert(batch.map(\.fields), into: c, key: configuration.chainKey)
          })
      } catch {
        result = .failure(error)
      }

      condition.lock()
      inFlight = 0
      switch result {
      case .success:
        committedRows += Int64(count)
      case .failure(let error):
        failedCommits += 1
        let unreported = batch.filter { $0.completion == nil }.count
        if unreported > 0 {
          lostRows += unreported
          if unreportedFailure == nil { unreportedFailure = error }
        }
      }
      let retentionDue = configuration.retention != nil && Date() >= nextRetention
      if retentionDue {
        nextRetention = Date(timeIntervalSinceNow: configuration.retention?.interval ?? .infinity)
      }
      condition.broadcast()
      condition.unlock()

      for (offset, row) in batch.enumerated() {
        guard let completion = row.completion else { continue }
        completion(result.map { $0[offset] })
      }
      if retentionDue, let retention = configuration.retention {
        // A failed automatic retention keeps every row; it is retried at the next interval.
        _ = try? withConnection { c throws(AuditLogError) in
          try AuditLogStore.applyRetention(
            c, maximumAge: retention.maximumAge, maximumRows: retention.maximumRows, now: Date(),
            key: configuration.chainKey)
        }
      }
    }
  }
}
