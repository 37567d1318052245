import CSQLite

/// A value bound to, or read from, an SQL statement.
enum SQLValue: Equatable {
  case null
  case integer(Int64)
  case real(Double)
  case text(String)
}

/// Owns one `sqlite3*` handle and its prepared-statement cache; closes them in `deinit`.
///
/// Not `Sendable` and not thread-safe: exactly one owner uses it at a time (`AuditLog` guards its
/// connection with a lock; the static readers use a connection of their own on the calling thread).
final class SQLiteConnection {
  /// How to open the file.
  enum Mode {
    /// Read and write, creating the file when missing.
    case readWriteCreate
    /// Read only; the file must exist.
    case readOnly
  }

  let handle: OpaquePointer
  let path: String
  private var cache: [String: SQLiteStatement] = [:]

  /// Opens `path`.
  ///
  /// - Throws: `AuditLogError` with the code SQLite's result maps to (usually `.open`).
  init(path: String, mode: Mode) throws(AuditLogError) {
    self.path = path
    var db: OpaquePointer?
    let flags: Int32 =
      switch mode {
      case .readWriteCreate: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
      case .readOnly: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
      }
    let rc = sqlite3_open_v2(path, &db, flags, nil)
    guard let db else {
      throw AuditLogError(.open, sqliteCode: rc, "cannot open audit log \(path): out of memory")
    }
    guard rc == SQLITE_OK else {
      let error = SQLiteConnection.error(rc, db: db, path: path, context: "open")
      sqlite3_close_v2(db)
      throw error
    }
    handle = db
    sqlite3_extended_result_codes(db, 1)
  }

  deinit {
    // Finalize cached statements first; `close_v2` would defer the close until they are gone anyway.
    cache.removeAll()
    sqlite3_close_v2(handle)
  }

  /// Whether SQLite opened the main database read-only (permissions, immutable file, read-only mount).
  var isReadOnly: Bool { sqlite3_db_readonly(handle, "main") == 1 }

  /// Whether no explicit transaction is open.
  var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

  /// Sets how long a statement waits for another connection's lock before failing with `.busy`.
  func setBusyTimeout(milliseconds: Int) {
    sqlite3_busy_timeout(handle, Int32(clamping: milliseconds))
  }

  /// Runs SQL without results (one or more statements).
  func execute(_ sql: String, context: String) throws(AuditLogError) {
    let rc = sqlite3_exec(handle, sql, nil, nil, nil)
    guard rc == SQLITE_OK else { throw error(rc, context: context) }
  }

  /// A prepared statement for `sql`, cached for the connection's lifetime and reset before reuse.
  func statement(_ sql: String) throws(AuditLogError) -> SQLiteStatement {
    if let cached = cache[sql] {
      cached.reset()
      return cached
    }
    var stmt: OpaquePointer?
    let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
    guard rc == SQLITE_OK, let stmt else {
      throw error(rc, context: "prepare `\(sql.prefix(60))`")
    }
    let statement = SQLiteStatement(handle: stmt, connection: self)
    cache[sql] = statement
    return statement
  }

  /// The error for result code `rc`, with SQLite's message and the operation's context.
  func error(_ rc: Int32, context: String) -> AuditLogError {
    SQLiteConnection.error(rc, db: handle, path: path, context: context)
  }

  static func error(_ rc: Int32, db: OpaquePointer?, path: String, context: String) -> AuditLogError {
    var detail = String(cString: sqlite3_errstr(rc))
    if let db, sqlite3_extended_errcode(db) == rc, let message = sqlite3_errmsg(db) {
      detail = String(cString: message)
    }
    return AuditLogError(code(for: rc), sqliteCode: rc, "audit log \(path): \(context) failed: \(detail)")
  }

  /// Maps an SQLite (extended) result code to the module's error codes.
  static func code(for rc: Int32) -> AuditLogError.Code {
    switch rc & 0xff {
    case SQLITE_BUSY, SQLITE_LOCKED: .busy
    case SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH: .readOnly
    case SQLITE_FULL: .full
    case SQLITE_CORRUPT, SQLITE_NOTADB: .corrupt
    case SQLITE_IOERR: .io
    case SQLITE_CANTOPEN: .open
    case SQLITE_SCHEMA: .schema
    default: .sqlite
    }
  }
}

/// Owns one `sqlite3_stmt*`; finalizes it in `deinit`. Not `Sendable`; used by its connection's owner.
final class SQLiteStatement {
  let handle: OpaquePointer
  private unowned let connection: SQLiteConnection

  fileprivate init(handle: OpaquePointer, connection: SQLiteConnection) {
    self.handle = handle
    self.connection = connection
  }

  deinit { sqlite3_finalize(handle) }

  /// Clears bindings and rewinds so the statement can run again.
  func reset() {
    sqlite3_reset(handle)
    sqlite3_clear_bindings(handle)
  }

  /// Binds `values` to parameters 1…n.
  func bind(_ values: [SQLValue]) throws(AuditLogError) {
    for (offset, value) in values.enumerated() {
      let index = Int32(offset + 1)
      let rc: Int32
      switch value {
      case .null: rc = sqlite3_bind_null(handle, index)
      case .integer(let v): rc = sqlite3_bind_int64(handle, index, v)
      case .real(let v): rc = sqlite3_bind_double(handle, index, v)
      case .text(let v):
        // SQLITE_TRANSIENT: SQLite copies the bytes before the call returns.
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        var text = v
        rc = text.withUTF8 { buffer in
          guard let base = buffer.baseAddress else {
            return sqlite3_bind_text64(handle, index, "", 0, transient, UInt8(SQLITE_UTF8))
          }
          return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
            sqlite3_bind_text64(
              handle, index, $0, sqlite3_uint64(buffer.count), transient, UInt8(SQLITE_UTF8))
          }
        }
      }
      guard rc == SQLITE_OK else { throw connection.error(rc, context: "bind parameter \(index)") }
    }
  }

  /// Advances one step.
  ///
  /// - Returns: `true` when a row is available, `false` when the statement is done.
  /// - Throws: `AuditLogError` for any other result.
  func step(context: @autoclosure () -> String) throws(AuditLogError) -> Bool {
    let rc = sqlite3_step(handle)
    switch rc {
    case SQLITE_ROW: return true
    case SQLITE_DONE: return false
    default:
      let error = connection.error(rc, context: context())
      sqlite3_reset(handle)
      throw error
    }
  }

  /// Runs a statement that returns no rows.
  func run(_ values: [SQLValue] = [], context: @autoclosure () -> String) throws(AuditLogError) {
    try bind(values)
    while try step(context: context()) {}
    reset()
  }

  /// Column `index` of the current row.
  func value(_ index: Int32) -> SQLValue {
    switch sqlite3_column_type(handle, index) {
    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, index))
    case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, index))
    case SQLITE_NULL: return .null
    default:
      // TEXT, or a BLOB someone wrote by hand: read its bytes as UTF-8 (invalid bytes are repaired,
      // which then fails verification rather than crashing).
      let bytes = sqlite3_column_blob(handle, index)
      let count = Int(sqlite3_column_bytes(handle, index))
      guard count > 0, let bytes else { return .text("") }
      let buffer = UnsafeRawBufferPointer(start: bytes, count: count)
      return .text(String(decoding: buffer, as: UTF8.self))
    }
  }

  func integer(_ index: Int32) -> Int64? {
    if case .integer(let v) = value(index) { return v }
    return nil
  }

  func text(_ index: Int32) -> String? {
    if case .text(let v) = value(index) { return v }
    return nil
  }
}

extension SQLiteConnection {
  /// Rows changed by the last INSERT, UPDATE or DELETE.
  var changes: Int { Int(sqlite3_changes64(handle)) }

  /// Whether the main database file was unlinked, renamed or replaced since it was opened.
  ///
  /// SQLite notices this itself only in rollback-journal mode; in WAL mode writes would go on into
  /// the orphaned file, so the log asks before every write transaction (one `stat`).
  var hasMoved: Bool {
    var moved: Int32 = 0
    let rc = sqlite3_file_control(handle, "main", SQLITE_FCNTL_HAS_MOVED, &moved)
    return rc == SQLITE_OK && moved != 0
  }

  /// `BEGIN IMMEDIATE`, refusing when the file was moved or replaced (`.readOnly`,
  /// `SQLITE_READONLY_DBMOVED`).
  func beginWrite(context: String) throws(AuditLogError) {
    guard !hasMoved else {
      throw AuditLogError(
        .readOnly, sqliteCode: SQLITE_READONLY | (4 << 8),
        "audit log \(path): \(context) failed: the database file was moved, replaced or deleted while open")
    }
    try statement("BEGIN IMMEDIATE").run(context: context)
  }

  /// Rolls back an open transaction after a failure; a failing rollback is not worth a second error.
  func rollbackIfNeeded() {
    if !isAutocommit { sqlite3_exec(handle, "ROLLBACK", nil, nil, nil) }
  }
}
