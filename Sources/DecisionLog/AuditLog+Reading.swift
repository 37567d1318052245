import Foundation

extension AuditLog {
  /// Recomputes the checkpoint chain and every row's hash and link.
  ///
  /// Detects edited, deleted (except at the newest end), reordered and inserted rows, and edited or
  /// deleted checkpoints. Whoever can rewrite the whole file can also recompute an unkeyed chain
  /// (a keyed one only with the key): compare `headHash` with a copy kept elsewhere to detect that
  /// and truncation.
  /// - Parameter key: The chain's key, for a log created with one.
  /// - Returns: the report; a broken chain is reported, not thrown (see `requireValid`).
  /// - Throws: `.key` when the log is keyed and `key` is missing or another key (or the log is not
  ///   keyed and a key is given); `.open`, `.schema`, `.corrupt` and other SQLite errors.
  /// - Complexity: O(rows), one sequential scan.
  public static func verify(path: String, key: AuditChainKey? = nil) throws(AuditLogError)
    -> VerificationReport
  {
    let (c, version) = try openForReading(path)
    try AuditSchema.requireKey(c, key)
    return try AuditLogStore.verify(c, key: key, schemaVersion: version)
  }

  /// The newest `count` rows, oldest first.
  public static func tail(path: String, count: Int) throws(AuditLogError) -> [StoredRecord] {
    guard count >= 0 else { throw AuditLogError(.invalidInput, "tail count must be ≥ 0, got \(count)") }
    let (c, version) = try openForReading(path)
    var out = [StoredRecord]()
    do {
      try AuditLogStore.rows(
        c, sql: AuditLogStore.selectRow(schemaVersion: version) + " ORDER BY id DESC LIMIT ?",
        parameters: [.integer(Int64(count))]
      ) { out.append($0) }
    } catch let error as AuditLogError {
      throw error
    } catch {
      throw AuditLogError(.sqlite, "audit log \(path): tail failed: \(error)")
    }
    return out.reversed()
  }

  /// Writes rows as JSON lines (docs/audit-log.md, "Export"), oldest first.
  ///
  /// - Parameters:
  ///   - path: The database.
  ///   - since: Only rows whose time is at or after this instant.
  ///   - sink: Receives each line without its trailing newline; its errors stop the export and are
  ///     rethrown unchanged.
  /// - Returns: The number of lines written.
  @discardableResult
  public static func export(path: String, since: Date? = nil, to sink: (String) throws -> Void) throws -> Int
  {
    let (c, version) = try openForReading(path)
    let start = since.map { Int64(($0.timeIntervalSince1970 * 1000).rounded(.up)) } ?? Int64.min
    var count = 0
    try AuditLogStore.rows(
      c, sql: AuditLogStore.selectRow(schemaVersion: version) + " WHERE time_ms >= ? ORDER BY id",
      parameters: [.integer(start)]
    ) {
      try sink(JSONLine.line(for: $0))
      count += 1
    }
    return count
  }

  /// Labelled prompts whose rows still exist, by decision id.
  public static func labels(path: String) throws(AuditLogError) -> [LabeledPrompt] {
    let (c, _) = try openForReading(path)
    let s = try c.statement(
      "SELECT l.decision_id, d.prompt_text, l.label, l.note, l.time_ms FROM labels l "
        + "JOIN decisions d ON d.id = l.decision_id WHERE d.prompt_text IS NOT NULL ORDER BY l.decision_id")
    var out = [LabeledPrompt]()
    while try s.step(context: "read labels") {
      out.append(
        LabeledPrompt(
          id: s.integer(0) ?? -1, text: s.text(1) ?? "", label: s.text(2) ?? "", note: s.text(3),
          timeMilliseconds: s.integer(4) ?? 0))
    }
    s.reset()
    return out
  }

  /// Opens `path` read-only (a version-1 log is read as it is, not upgraded).
  ///
  /// - Returns: The connection and the log's schema version.
  static func openForReading(_ path: String) throws(AuditLogError) -> (SQLiteConnection, Int) {
    guard FileManager.default.fileExists(atPath: path) else {
      throw AuditLogError(.open, sqliteCode: 14, "audit log \(path) does not exist")
    }
    let c = try SQLiteConnection(path: path, mode: .readOnly)
    c.setBusyTimeout(milliseconds: 2000)
    return (c, try AuditSchema.check(c))
  }
}
