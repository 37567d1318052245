/// A plain read-write connection to an audit database, for maintenance and for tests that tamper
/// with a log or hold its lock. It bypasses the hash chain: never use it to write decisions.
package final class AuditDatabaseHandle {
  private let connection: SQLiteConnection

  /// Opens `path` read-write (creating it when missing).
  package init(path: String) throws(AuditLogError) {
    connection = try SQLiteConnection(path: path, mode: .readWriteCreate)
  }

  /// Runs one or more SQL statements.
  package func execute(_ sql: String) throws(AuditLogError) {
    try connection.execute(sql, context: "execute `\(sql.prefix(60))`")
  }

  /// Rewrites a log written by this build into the schema-version-1 layout (version 2 only added
  /// the last two columns of `decisions`), for tests of reading and upgrading version-1 logs. Its
  /// rows must have no message index or role (they then hash in the version-1 form).
  package func rewriteAsSchemaVersion1() throws(AuditLogError) {
    try execute(
      """
      ALTER TABLE decisions DROP COLUMN role;
      ALTER TABLE decisions DROP COLUMN message_index;
      UPDATE meta SET value = '1' WHERE key = 'schema_version';
      """)
  }

  /// The first column of the first row of `sql` as text, or `nil`.
  package func text(_ sql: String) throws(AuditLogError) -> String? {
    let s = try connection.statement(sql)
    defer { s.reset() }
    guard try s.step(context: "query") else { return nil }
    switch s.value(0) {
    case .null: return nil
    case .integer(let v): return String(v)
    case .real(let v): return String(v)
    case .text(let v): return v
    }
  }
}
