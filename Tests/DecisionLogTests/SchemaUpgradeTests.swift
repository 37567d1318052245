import DecisionLog
import Foundation
import XCTest

/// Schema version 2: the message index and role of a `messages` request's rows, and version-1
/// logs read as they are and upgraded when opened for writing.
final class SchemaUpgradeTests: AuditLogTestCase {
  /// `sampleRecord(n)` as the row of message `index` with `role`.
  private func messageRecord(_ n: Int, index: Int?, role: String?) -> AuditRecord {
    var record = record(n)
    record.messageIndex = index
    record.role = role
    return record
  }

  /// A version-1 log with `rows` prompt rows: written by this code (prompt rows hash in the
  /// version-1 form), then given the version-1 layout (version 2 only added the last two columns
  /// of `decisions`) and `schema_version`. A log written by the version-1 binary was upgraded and
  /// checked the same way by hand (docs/audit-log.md, "Schema").
  private func makeVersion1Log(rows: Int) throws -> String {
    let file = path("v1.db")
    let log = try open(file, storePromptText: true)
    for n in 1...rows { _ = try log.appendAndWait(record(n)) }
    log.close()
    let handle = try AuditDatabaseHandle(path: file)
    try handle.rewriteAsSchemaVersion1()
    XCTAssertEqual(
      try handle.text("SELECT group_concat(name) FROM pragma_table_info('decisions')")?.hasSuffix(
        "error,shadow_of,prev_hash,hash"), true)
    return file
  }

  func testMessageRowsKeepTheirIndexAndRoleThroughReadingExportAndVerification() throws {
    let file = path()
    let log = try open(file, storePromptText: true)
    XCTAssertNil(log.upgradedFromSchemaVersion, "a new log is created at the current version")
    let records = [
      record(1), messageRecord(2, index: 1, role: "user"), messageRecord(3, index: 2, role: "tool"),
      messageRecord(4, index: 0, role: nil), messageRecord(5, index: nil, role: "user"),
    ]
    for record in records { _ = try log.appendAndWait(record) }
    log.close()

    XCTAssertEqual(try AuditLog.tail(path: file, count: 5).map(\.record), records)
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
    var exported: [[String: Any]] = []
    try AuditLog.export(path: file) { line in
      exported.append(try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]))
    }
    XCTAssertEqual(exported.map { $0["message_index"] as? Int }, [nil, 1, 2, 0, nil])
    XCTAssertEqual(exported.map { $0["role"] as? String }, [nil, "user", "tool", nil, "user"])
    XCTAssertTrue(exported[0]["message_index"] is NSNull)
    XCTAssertTrue(exported[0]["role"] is NSNull)
  }

  func testEditingOrBlankingAMessageRowsIndexOrRoleIsDetected() throws {
    let edits = [
      ("UPDATE decisions SET role = NULL, message_index = NULL WHERE id = 2", Int64(2)),
      ("UPDATE decisions SET role = 'system' WHERE id = 3", 3),
      ("UPDATE decisions SET message_index = 0 WHERE id = 3", 3),
      ("UPDATE decisions SET role = 'user' WHERE id = 1", 1),
    ]
    for (number, (sql, brokenRow)) in edits.enumerated() {
      let file = path("edit\(number).db")
      let log = try open(file)
      _ = try log.appendAndWait(record(1))
      _ = try log.appendAndWait(messageRecord(2, index: 1, role: "user"))
      _ = try log.appendAndWait(messageRecord(3, index: 2, role: "tool"))
      log.close()
      XCTAssertTrue(try AuditLog.verify(path: file).isValid)
      try AuditDatabaseHandle(path: file).execute(sql)
      let report = try AuditLog.verify(path: file)
      XCTAssertEqual(report.firstBrokenRowID, brokenRow, sql)
      XCTAssertEqual(report.reason, "hash does not match the row's contents", sql)
    }
  }

  func testVersion1LogIsReadAsItIsAndUpgradedWhenOpenedForWriting() throws {
    let file = try makeVersion1Log(rows: 4)
    let handle = try AuditDatabaseHandle(path: file)

    // Readers do not change the file.
    let report = try AuditLog.verify(path: file)
    XCTAssertTrue(report.isValid, report.reason ?? "")
    XCTAssertEqual(report.rowsChecked, 4)
    XCTAssertEqual(try AuditLog.tail(path: file, count: 4).map(\.record), (1...4).map { record($0) })
    var lines = 0
    try AuditLog.export(path: file) { line in
      let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      XCTAssertTrue(object["role"] is NSNull)
      XCTAssertTrue(object["message_index"] is NSNull)
      lines += 1
    }
    XCTAssertEqual(lines, 4)
    XCTAssertEqual(try handle.text("SELECT value FROM meta WHERE key = 'schema_version'"), "1")
    XCTAssertEqual(try handle.text("SELECT count(*) FROM pragma_table_info('decisions')"), "18")

    // A writer upgrades it; the old rows keep their hashes and the chain continues.
    let headBefore = report.headHash
    let log = try open(file, storePromptText: true)
    XCTAssertEqual(log.upgradedFromSchemaVersion, 1)
    XCTAssertEqual(try log.appendAndWait(messageRecord(5, index: 3, role: "tool")), 5)
    XCTAssertEqual(try log.appendAndWait(record(6)), 6)
    try log.label(id: 2, label: "benign")
    log.close()
    XCTAssertEqual(try handle.text("SELECT value FROM meta WHERE key = 'schema_version'"), "2")
    XCTAssertEqual(
      try handle.text("SELECT group_concat(name) FROM pragma_table_info('decisions')")?.hasSuffix(
        "prev_hash,hash,message_index,role"), true)
    XCTAssertEqual(try handle.text("SELECT hash FROM decisions WHERE id = 4"), headBefore)
    let upgraded = try AuditLog.verify(path: file)
    XCTAssertTrue(upgraded.isValid, upgraded.reason ?? "")
    XCTAssertEqual(upgraded.rowsChecked, 6)
    let rows = try AuditLog.tail(path: file, count: 6)
    XCTAssertEqual(rows.map(\.record.role), [nil, nil, nil, nil, "tool", nil])
    XCTAssertEqual(rows.map(\.record.messageIndex), [nil, nil, nil, nil, 3, nil])
    XCTAssertEqual(try AuditLog.labels(path: file).map(\.id), [2])

    // Opening the upgraded log again changes nothing.
    let again = try open(file)
    XCTAssertNil(again.upgradedFromSchemaVersion)
    again.close()
    XCTAssertEqual(try handle.text("SELECT count(*) FROM pragma_table_info('decisions')"), "20")
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
  }

  func testAVersionThatDisagreesWithTheColumnsIsRefused() throws {
    // A version-1 log relabelled 2, and a version-2 log relabelled 1.
    let relabelled = try makeVersion1Log(rows: 2)
    try AuditDatabaseHandle(path: relabelled).execute(
      "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    let downgraded = path("downgraded.db")
    try open(downgraded).close()
    try AuditDatabaseHandle(path: downgraded).execute(
      "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    for (file, wording) in [(relabelled, "lacks"), (downgraded, "already has")] {
      for error in [auditError { _ = try open(file) }, auditError { _ = try AuditLog.verify(path: file) }] {
        XCTAssertEqual(error?.code, .schema)
        XCTAssertEqual(
          error?.message.contains("decisions table \(wording) message_index or role"), true,
          error?.message ?? "")
      }
    }
  }

  func testOtherSchemaVersionsAreRefused() throws {
    for version in ["0", "3", "two"] {
      let file = path("v\(version).db")
      try open(file).close()
      try AuditDatabaseHandle(path: file).execute(
        "UPDATE meta SET value = '\(version)' WHERE key = 'schema_version'")
      let opening = auditError { _ = try open(file) }
      XCTAssertEqual(opening?.code, .schema)
      XCTAssertEqual(
        opening?.message.hasSuffix("has schema version \(version); this build reads 1 to 2"), true,
        opening?.message ?? "")
      XCTAssertEqual(auditError { _ = try AuditLog.verify(path: file) }?.code, .schema)
    }
  }
}
