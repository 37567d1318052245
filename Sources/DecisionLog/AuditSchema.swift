/// The audit log's tables (docs/audit-log.md, "Schema") and how a connection is prepared.
enum AuditSchema {
  /// The version this code writes, stored in `meta` as `schema_version`. Version 2 added the
  /// decision columns `message_index` and `role`; this code reads versions 1 and 2 and upgrades a
  /// version-1 log when it opens it for writing (`prepare`).
  static let version = 2

  static let create = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE decisions (
      id INTEGER PRIMARY KEY,
      time_ms INTEGER NOT NULL,
      request_id TEXT, client TEXT, peer TEXT,
      prompt_sha256 TEXT NOT NULL,
      prompt_text TEXT,
      tokens INTEGER, score REAL, threshold REAL, decision TEXT, features TEXT, model TEXT,
      latency_ms REAL, error TEXT, shadow_of INTEGER,
      prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
      message_index INTEGER, role TEXT);
    CREATE INDEX decisions_time ON decisions (time_ms);
    CREATE TABLE labels (
      decision_id INTEGER PRIMARY KEY,
      label TEXT NOT NULL CHECK (label IN ('benign', 'adversarial')),
      note TEXT,
      time_ms INTEGER NOT NULL);
    CREATE TABLE checkpoints (
      id INTEGER PRIMARY KEY,
      time_ms INTEGER NOT NULL,
      through_id INTEGER NOT NULL,
      through_hash TEXT NOT NULL,
      deleted_rows INTEGER NOT NULL,
      prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('schema_version', '2'), ('format', 'curvalid-audit-log');
    """

  /// Version 1 → 2: the columns go at the end of `decisions`, where `create` puts them too, so an
  /// upgraded log has the same column order as a new one. Existing rows read null in both.
  static let upgradeFromVersion1 = """
    ALTER TABLE decisions ADD COLUMN message_index INTEGER;
    ALTER TABLE decisions ADD COLUMN role TEXT;
    UPDATE meta SET value = '2' WHERE key = 'schema_version';
    """

  /// Creates the tables in a new file, or checks the version of an existing one and upgrades a
  /// version-1 log (in the same transaction); then records the chain's key (a new or still empty
  /// log) or checks it (`requireKey`).
  ///
  /// - Throws: `.schema` when the file holds other tables or an unknown version; `.key` when the
  ///   key does not fit the log; SQLite errors.
  /// - Returns: The version the log had when it was upgraded, or `nil` (new or current log).
  @discardableResult
  static func prepare(_ connection: SQLiteConnection, key: AuditChainKey?) throws(AuditLogError) -> Int? {
    try connection.execute("BEGIN IMMEDIATE", context: "begin schema transaction")
    var upgradedFrom: Int?
    do throws(AuditLogError) {
      let tables = try connection.statement("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
      _ = try tables.step(context: "read schema")
      let tableCount = tables.integer(0) ?? 0
      tables.reset()
      if tableCount == 0 {
        try connection.execute(create, context: "create schema")
      } else if try check(connection) == 1 {
        try connection.execute(upgradeFromVersion1, context: "upgrade the schema from version 1 to 2")
        upgradedFrom = 1
      }
      if let key, try keyIdentifier(connection) == nil, try isEmpty(connection) {
        try connection.statement(
          "INSERT INTO meta (key, value) VALUES ('chain', 'hmac-sha256'), ('chain_key_id', ?)"
        ).run([.text(key.identifier)], context: "record the chain key")
      }
      try requireKey(connection, key)
      try connection.execute("COMMIT", context: "commit schema")
    } catch {
      if !connection.isAutocommit { try? connection.execute("ROLLBACK", context: "rollback schema") }
      throw error
    }
    return upgradedFrom
  }

  /// The identifier of the key the log's chain is keyed with (`meta.chain_key_id`), or `nil` for
  /// the unkeyed chain.
  static func keyIdentifier(_ connection: SQLiteConnection) throws(AuditLogError) -> String? {
    let meta = try connection.statement("SELECT value FROM meta WHERE key = 'chain_key_id'")
    defer { meta.reset() }
    return try meta.step(context: "read the chain key identifier") ? meta.text(0) : nil
  }

  /// Whether the log has neither decisions nor checkpoints (a key may still be recorded).
  private static func isEmpty(_ connection: SQLiteConnection) throws(AuditLogError) -> Bool {
    let rows = try connection.statement(
      "SELECT (SELECT count(*) FROM decisions) + (SELECT count(*) FROM checkpoints)")
    defer { rows.reset() }
    _ = try rows.step(context: "count rows")
    return rows.integer(0) == 0
  }

  /// Checks that `key` is the one the log's chain is keyed with (or that both are unkeyed).
  ///
  /// - Throws: `.key` naming the log's key identifier and the given one.
  static func requireKey(_ connection: SQLiteConnection, _ key: AuditChainKey?) throws(AuditLogError) {
    let stored = try keyIdentifier(connection)
    switch (stored, key) {
    case (nil, nil):
      return
    case (let stored?, nil):
      throw AuditLogError(
        .key, "audit log \(connection.path) has a keyed hash chain (key id \(stored)); give its key")
    case (nil, let key?):
      throw AuditLogError(
        .key,
        "audit log \(connection.path) has an unkeyed hash chain; the given key (id \(key.identifier)) does not "
          + "apply to it (use the log without a key, or start a new log with the key)")
    case (let stored?, let key?):
      guard stored == key.identifier else {
        throw AuditLogError(
          .key,
          "audit log \(connection.path) is keyed with key id \(stored); the given key has id \(key.identifier)"
        )
      }
    }
  }

  /// Checks that the file is an audit log of a version this code reads.
  ///
  /// - Returns: The log's schema version (1 or 2).
  @discardableResult
  static func check(_ connection: SQLiteConnection) throws(AuditLogError) -> Int {
    let hasMeta = try connection.statement(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'decisions', 'labels', 'checkpoints')"
    )
    _ = try hasMeta.step(context: "read schema")
    let known = hasMeta.integer(0) ?? 0
    hasMeta.reset()
    guard known == 4 else {
      throw AuditLogError(.schema, "\(connection.path) is not a curvalid audit log (its tables differ)")
    }
    let meta = try connection.statement("SELECT value FROM meta WHERE key = 'schema_version'")
    let found = try meta.step(context: "read schema version") ? meta.text(0) : nil
    meta.reset()
    guard let found, let number = Int(found), (1...version).contains(number) else {
      throw AuditLogError(
        .schema,
        "audit log \(connection.path) has schema version \(found ?? "none"); this build reads 1 to \(version)"
      )
    }
    let columns = try connection.statement(
      "SELECT count(*) FROM pragma_table_info('decisions') WHERE name IN ('message_index', 'role')")
    _ = try columns.step(context: "read the decisions columns")
    let added = columns.integer(0) ?? 0
    columns.reset()
    guard added == (number >= 2 ? 2 : 0) else {
      throw AuditLogError(
        .schema,
        "audit log \(connection.path) says schema version \(number) but its decisions table "
          + (number >= 2 ? "lacks" : "already has") + " message_index or role (edited by hand?)")
    }
    return number
  }
}
