import Foundation

/// SQL over one connection: the chain's head, inserts, retention, labels, verification and reads.
///
/// Every function runs on the caller's thread with a connection the caller owns exclusively.
enum AuditLogStore {
  /// The query of every decision column, for a log of `schemaVersion` (`prev_hash` and `hash` at
  /// `previousHashColumn` and `hashColumn`).
  static func selectRow(schemaVersion: Int = AuditSchema.version) -> String {
    "SELECT id, \(DecisionFields.columns(schemaVersion: schemaVersion)), prev_hash, hash FROM decisions"
  }
  /// The result column of `prev_hash` in `selectRow`.
  static let previousHashColumn = Int32(DecisionFields.columnCount + 1)
  /// The result column of `hash` in `selectRow`.
  static let hashColumn = Int32(DecisionFields.columnCount + 2)

  /// The id and hash the next row links to: the last row's, else the latest checkpoint's, else genesis.
  static func head(_ c: SQLiteConnection) throws(AuditLogError) -> (id: Int64, hash: String) {
    var head: (id: Int64, hash: String) = (0, AuditChain.genesis)
    let last = try c.statement("SELECT id, hash FROM decisions ORDER BY id DESC LIMIT 1")
    if try last.step(context: "read chain head"), let id = last.integer(0) {
      head = (id, last.text(1) ?? "")
    }
    last.reset()
    let checkpoint = try c.statement(
      "SELECT through_id, through_hash FROM checkpoints ORDER BY id DESC LIMIT 1")
    if try checkpoint.step(context: "read latest checkpoint"), let id = checkpoint.integer(0), id > head.id {
      head = (id, checkpoint.text(1) ?? "")
    }
    checkpoint.reset()
    return head
  }

  /// Inserts `rows` in one transaction, chained after the current head.
  ///
  /// - Returns: the new rows' ids, consecutive and in `rows` order.
  static func insert(
    _ rows: [DecisionFields], into c: SQLiteConnection, key: AuditChainKey?
  ) throws(AuditLogError) -> [Int64] {
    try c.beginWrite(context: "begin transaction for \(rows.count) decisions")
    do throws(AuditLogError) {
      var (lastID, lastHash) = try head(c)
      let placeholders = Array(repeating: "?", count: DecisionFields.columnCount + 3).joined(separator: ", ")
      let insert = try c.statement(
        "INSERT INTO decisions (id, \(DecisionFields.columns), prev_hash, hash) VALUES (\(placeholders))")
      var ids = [Int64]()
      ids.reserveCapacity(rows.count)
      for row in rows {
        let id = lastID + 1
        guard let hash = row.hash(id: id, previous: lastHash, key: key) else {
          throw AuditLogError(.corrupt, "audit log \(c.path): the chain head's hash is malformed; run verify")
        }
        try insert.run(
          [.integer(id)] + row.values + [.text(lastHash), .text(hash)], context: "insert decision \(id)")
        ids.append(id)
        (lastID, lastHash) = (id, hash)
      }
      try c.statement("COMMIT").run(context: "commit \(rows.count) decisions")
      return ids
    } catch {
      c.rollbackIfNeeded()
      throw error
    }
  }

  /// Deletes the oldest rows beyond the limits and records a checkpoint, in one transaction.
  ///
  /// Only a prefix of ids is deleted (so the chain stays whole): by age, the rows before the first
  /// row whose time is within `maximumAge`. The rows to delete must verify first, so retention
  /// cannot launder an edited row.
  ///
  /// - Returns: the number of rows deleted.
  static func applyRetention(
    _ c: SQLiteConnection, maximumAge: TimeInterval?, maximumRows: Int?, now: Date, key: AuditChainKey?
  ) throws(AuditLogError) -> Int {
    if let maximumAge, !(maximumAge >= 0) {
      throw AuditLogError(.invalidInput, "retention maximum age must be ≥ 0, got \(maximumAge)")
    }
    if let maximumRows, maximumRows < 0 {
      throw AuditLogError(.invalidInput, "retention maximum rows must be ≥ 0, got \(maximumRows)")
    }
    let nowMilliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded())
    try c.beginWrite(context: "begin retention")
    do throws(AuditLogError) {
      let (headID, _) = try head(c)
      var through: Int64 = 0
      if let maximumAge {
        let cutoff = nowMilliseconds - Int64(min(maximumAge * 1000, 9.0e15).rounded())
        let s = try c.statement("SELECT min(id) FROM decisions WHERE time_ms >= ?")
        try s.bind([.integer(cutoff)])
        _ = try s.step(context: "find rows within the retention age")
        through = max(through, s.integer(0).map { $0 - 1 } ?? headID)
        s.reset()
      }
      if let maximumRows {
        let s = try c.statement("SELECT id FROM decisions ORDER BY id DESC LIMIT 1 OFFSET ?")
        try s.bind([.integer(Int64(maximumRows))])
        if try s.step(context: "find rows beyond the retention count"), let id = s.integer(0) {
          through = max(through, id)
        }
        s.reset()
      }
      let first = try c.statement("SELECT min(id) FROM decisions")
      _ = try first.step(context: "find the oldest row")
      let oldest = first.integer(0)
      first.reset()
      guard let oldest, through >= oldest else {
        c.rollbackIfNeeded()
        return 0
      }
      let check = try verify(c, throughID: through, key: key)
      guard check.isValid else {
        try check.requireValid()
        return 0
      }
      let hashQuery = try c.statement("SELECT hash FROM decisions WHERE id = ?")
      try hashQuery.bind([.integer(through)])
      let throughHash = try hashQuery.step(context: "read the last deleted row") ? hashQuery.text(0) : nil
      hashQuery.reset()
      guard let throughHash else {
        throw AuditLogError(.corrupt, "audit log \(c.path): row \(through) is missing; run verify")
      }
      try c.statement("DELETE FROM decisions WHERE id <= ?").run(
        [.integer(through)], context: "delete old rows")
      let deleted = c.changes
      try c.statement("DELETE FROM labels WHERE decision_id <= ?").run(
        [.integer(through)], context: "delete labels of old rows")
      let previous = try c.statement("SELECT id, hash FROM checkpoints ORDER BY id DESC LIMIT 1")
      var (previousID, previousHash) = (Int64(0), AuditChain.genesis)
      if try previous.step(context: "read latest checkpoint"), let id = previous.integer(0) {
        (previousID, previousHash) = (id, previous.text(1) ?? "")
      }
      previous.reset()
      let checkpoint = CheckpointFields(
        id: previousID + 1, timeMilliseconds: nowMilliseconds, throughID: through, throughHash: throughHash,
        deletedRows: Int64(deleted))
      guard let hash = checkpoint.hash(previous: previousHash, key: key) else {
        throw AuditLogError(.corrupt, "audit log \(c.path): checkpoint \(previousID) has a malformed hash")
      }
      try c.statement(
        "INSERT INTO checkpoints (id, time_ms, through_id, through_hash, deleted_rows, prev_hash, hash) "
          + "VALUES (?, ?, ?, ?, ?, ?, ?)"
      ).run(
        [
          .integer(checkpoint.id), .integer(nowMilliseconds), .integer(through), .text(throughHash),
          .integer(Int64(deleted)), .text(previousHash), .text(hash),
        ], context: "insert checkpoint")
      try c.statement("COMMIT").run(context: "commit retention")
      return deleted
    } catch {
      c.rollbackIfNeeded()
      throw error
    }
  }

  /// Labels a row that has stored prompt text (replacing an earlier label).
  static func label(
    _ c: SQLiteConnection, id: Int64, label: String, note: String?, now: Date
  ) throws(AuditLogError) {
    guard label == "benign" || label == "adversarial" else {
      throw AuditLogError(.invalidInput, "label must be benign or adversarial, got \(label)")
    }
    try c.beginWrite(context: "begin label")
    do throws(AuditLogError) {
      let row = try c.statement("SELECT prompt_text IS NOT NULL FROM decisions WHERE id = ?")
      try row.bind([.integer(id)])
      let hasText = try row.step(context: "read decision \(id)") ? row.integer(0) : nil
      row.reset()
      guard let hasText else { throw AuditLogError(.invalidInput, "no decision row with id \(id) to label") }
      guard hasText == 1 else {
        throw AuditLogError(
          .invalidInput,
          "decision \(id) has no stored prompt text (the log was not configured with storePromptText); only rows with text can be labelled"
        )
      }
      try c.statement(
        "INSERT INTO labels (decision_id, label, note, time_ms) VALUES (?, ?, ?, ?) ON CONFLICT (decision_id) "
          + "DO UPDATE SET label = excluded.label, note = excluded.note, time_ms = excluded.time_ms"
      ).run(
        [
          .integer(id), .text(label), note.map(SQLValue.text) ?? .null,
          .integer(Int64((now.timeIntervalSince1970 * 1000).rounded())),
        ],
        context: "label decision \(id)")
      try c.statement("COMMIT").run(context: "commit label")
    } catch {
      c.rollbackIfNeeded()
      throw error
    }
  }

  /// Recomputes the checkpoint chain and the decision chain (up to `throughID` when given), keyed
  /// with `key` when the log is keyed.
  static func verify(
    _ c: SQLiteConnection, throughID: Int64? = nil, key: AuditChainKey?,
    schemaVersion: Int = AuditSchema.version
  )
    throws(AuditLogError)
    -> VerificationReport
  {
    var report = VerificationReport(
      rowsChecked: 0, checkpointsChecked: 0, firstBrokenRowID: nil, firstBrokenCheckpointID: nil, reason: nil,
      startHash: AuditChain.genesis, headID: nil, headHash: AuditChain.genesis)
    var previous = AuditChain.genesis
    var lastThrough: Int64 = 0
    let checkpoints = try c.statement(
      "SELECT id, time_ms, through_id, through_hash, deleted_rows, prev_hash, hash FROM checkpoints ORDER BY id"
    )
    defer { checkpoints.reset() }
    while try checkpoints.step(context: "read checkpoints") {
      let fields = CheckpointFields(
        id: checkpoints.integer(0) ?? -1, timeMilliseconds: checkpoints.integer(1) ?? -1,
        throughID: checkpoints.integer(2) ?? -1, throughHash: checkpoints.text(3) ?? "",
        deletedRows: checkpoints.integer(4) ?? -1)
      let storedPrevious = checkpoints.text(5) ?? ""
      let stored = checkpoints.text(6) ?? ""
      report.checkpointsChecked += 1
      let problem: String? =
        if fields.id != Int64(report.checkpointsChecked) {
          "checkpoint ids are not consecutive (expected \(report.checkpointsChecked))"
        } else if storedPrevious != previous {
          "prev_hash does not match the previous checkpoint's hash"
        } else if fields.throughID <= lastThrough {
          "through_id \(fields.throughID) does not advance past \(lastThrough)"
        } else if fields.hash(previous: storedPrevious, key: key) != stored {
          "hash does not match the checkpoint's contents"
        } else { nil }
      if let problem {
        report.firstBrokenCheckpointID = fields.id
        report.reason = problem
        return report
      }
      previous = stored
      lastThrough = fields.throughID
      report.startHash = fields.throughHash
    }
    var expectedID = lastThrough + 1
    var link = report.startHash
    report.headHash = link
    let rows = try c.statement(
      selectRow(schemaVersion: schemaVersion) + (throughID == nil ? "" : " WHERE id <= ?") + " ORDER BY id")
    defer { rows.reset() }
    if let throughID { try rows.bind([.integer(throughID)]) }
    while try rows.step(context: "read decisions") {
      let id = rows.integer(0) ?? -1
      let fields = DecisionFields(statement: rows, offset: 1)
      let storedPrevious = rows.text(previousHashColumn) ?? ""
      let stored = rows.text(hashColumn) ?? ""
      report.rowsChecked += 1
      let problem: String? =
        if id < expectedID {
          lastThrough > 0 && id <= lastThrough
            ? "row id \(id) is covered by a retention checkpoint (through \(lastThrough))"
            : "row id \(id) is out of sequence (expected \(expectedID))"
        } else if id > expectedID {
          id - expectedID == 1 ? "row \(expectedID) is missing" : "rows \(expectedID)…\(id - 1) are missing"
        } else if storedPrevious != link {
          expectedID == lastThrough + 1
            ? "prev_hash does not match the chain start (\(lastThrough == 0 ? "genesis" : "checkpoint"))"
            : "prev_hash does not match row \(id - 1)'s hash"
        } else if fields.hash(id: id, previous: storedPrevious, key: key) != stored {
          "hash does not match the row's contents"
        } else { nil }
      if let problem {
        report.firstBrokenRowID = id
        report.reason = problem
        return report
      }
      link = stored
      expectedID = id + 1
      report.headID = id
      report.headHash = stored
    }
    return report
  }

  /// Reads rows with `sql` (which selects `selectRow`'s columns) and the given parameters.
  static func rows(
    _ c: SQLiteConnection, sql: String, parameters: [SQLValue], each: (StoredRecord) throws -> Void
  ) throws {
    let s = try c.statement(sql)
    defer { s.reset() }
    try s.bind(parameters)
    while try s.step(context: "read decisions") {
      let fields = DecisionFields(statement: s, offset: 1)
      try each(
        StoredRecord(
          id: s.integer(0) ?? -1, timeMilliseconds: fields.timeMilliseconds, record: fields.record,
          previousHash: s.text(previousHashColumn) ?? "", hash: s.text(hashColumn) ?? ""))
    }
  }
}
