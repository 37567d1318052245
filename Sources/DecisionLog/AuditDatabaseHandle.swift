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
