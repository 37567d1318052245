import DecisionLog
import Foundation
import XCTest

/// Tampering with a log through a plain SQLite connection must be reported at the right row.
final class VerificationTests: AuditLogTestCase {
  /// A verified log with `rows` rows, closed.
  private func makeLog(rows: Int = 10, times: (Int) -> Date = { _ in Date() }) throws -> String {
    let file = path()
    let log = try open(file, storePromptText: true)
    for n in 1...rows { _ = try log.appendAndWait(record(n, time: times(n))) }
    log.close()
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
    return file
  }

  private func tamper(_ file: String, _ sql: String) throws {
    try AuditDatabaseHandle(path: file).execute(sql)
  }

  func testEditedScoreIsDetected() throws {
    let file = try makeLog()
    try tamper(file, "UPDATE decisions SET score = 0.01 WHERE id = 4")
    let report = try AuditLog.verify(path: file)
    XCTAssertEqual(report.firstBrokenRowID, 4)
    XCTAssertEqual(report.reason, "hash does not match the row's contents")
    XCTAssertEqual(report.rowsChecked, 4)
    XCTAssertEqual(auditError { try report.requireValid() }?.code, .verification)
  }

  func testEditedDecisionWithRecomputedHashBreaksTheNextLink() throws {
    // Editing a row and fixing its own hash still breaks the next row's prev_hash.
    let file = try makeLog()
    try tamper(file, "UPDATE decisions SET hash = '\(String(repeating: "a", count: 64))' WHERE id = 6")
    let report = try AuditLog.verify(path: file)
    XCTAssertEqual(report.firstBrokenRowID, 6)
  }

  func testDeletedMiddleRowIsDetected() throws {
    let file = try makeLog()
    try tamper(file, "DELETE FROM decisions WHERE id = 5")
    let report = try AuditLog.verify(path: file)
    XCTAssertEqual(report.firstBrokenRowID, 6)
    XCTAssertEqual(report.reason, "row 5 is missing")
  }

  func testDeletedOldestRowsWithoutCheckpointAreDetected() throws {
    let file = try makeLog()
    try tamper(file, "DELETE FROM decisions WHERE id <= 3")
    let report = try AuditLog.verify(path: file)
    XCTAssertEqual(report.firstBrokenRowID, 4)
  }

  func testSwappedRowsAreDetected() throws {
    let file = try makeLog()
    // Swap the full contents (including hashes) of rows 3 and 4.
    try tamper(
      file,
      """
      UPDATE decisions SET id = -3 WHERE id = 3;
      UPDATE decisions SET id = 3 WHERE id = 4;
      UPDATE decisions SET id = 4 WHERE id = -3;
      """)
    let report = try AuditLog.verify(path: file)
    XCTAssertEqual(report.firstBrokenRowID, 3)
    XCTAssertEqual(report.reason, "prev_hash does not match row 2's hash")
  }

  func testSwappedContentsKeepingHashesAreDetected() throws {
    let file = try makeLog()
    try tamper(
      file,
      """
      CREATE TEMP TABLE t AS SELECT * FROM decisions WHERE id IN (3, 4);
      UPDATE decisions SET score = (SELECT score FROM t WHERE id = 4), request_id = (SELECT request_id FROM t WHERE id = 4) WHERE id = 3;
      UPDATE decisions SET score = (SELECT score FROM t WHERE id = 3), request_id = (SELECT request_id FROM t WHERE id = 3) WHERE id = 4;
      """)
    XCTAssertEqual(try AuditLog.verify(path: file).firstBrokenRowID, 3)
  }

  func testInsertedRowsAreDetected() throws {
    let file = try makeLog()
    // A forged row at the end that copies row 10's link fields.
    try tamper(
      file,
      """
      INSERT INTO decisions SELECT 11, time_ms, request_id, client, peer, prompt_sha256, prompt_text, tokens,
        score, threshold, 'accept', features, model, latency_ms, error, shadow_of, hash, hash, message_index, role
        FROM decisions WHERE id = 10;
      """)
    var report = try AuditLog.verify(path: file)
    XCTAssertEqual(report.firstBrokenRowID, 11)
    XCTAssertEqual(report.reason, "hash does not match the row's contents")

    // A forged row squeezed in by renumbering the rows after it.
    let second = path("second.db")
    let log = try open(second)
    for n in 1...5 { _ = try log.appendAndWait(record(n)) }
    log.close()
    try tamper(
      second,
      """
      UPDATE decisions SET id = id + 100 WHERE id >= 3;
      UPDATE decisions SET id = id - 99 WHERE id >= 100;
      INSERT INTO decisions SELECT 3, time_ms, request_id, client, peer, prompt_sha256, prompt_text, tokens,
        score, threshold, decision, features, model, latency_ms, error, shadow_of, prev_hash, hash, message_index,
        role FROM decisions WHERE id = 4;
      """)
    report = try AuditLog.verify(path: second)
    XCTAssertEqual(report.firstBrokenRowID, 4)
  }

  func testRetentionByCountKeepsVerifyGreenAndIdsContinue() throws {
    let file = try makeLog(rows: 30)
    let log = try open(file, storePromptText: true)
    try log.label(id: 2, label: "benign", note: nil)
    try log.label(id: 29, label: "adversarial", note: nil)
    XCTAssertEqual(try log.applyRetention(maximumAge: nil, maximumRows: 10), 20)
    XCTAssertEqual(try log.applyRetention(maximumAge: nil, maximumRows: 10), 0)
    XCTAssertEqual(try log.appendAndWait(record(31)), 31)
    XCTAssertEqual(try log.applyRetention(maximumAge: nil, maximumRows: 5), 6)
    log.close()
    let report = try AuditLog.verify(path: file)
    XCTAssertTrue(report.isValid, report.reason ?? "")
    XCTAssertEqual(report.checkpointsChecked, 2)
    XCTAssertEqual(report.rowsChecked, 5)
    XCTAssertEqual(report.headID, 31)
    XCTAssertEqual(try AuditLog.labels(path: file).map(\.id), [29], "labels of deleted rows go with them")

    // Deleting a middle row is still detected after retention.
    try tamper(file, "DELETE FROM decisions WHERE id = 29")
    XCTAssertEqual(try AuditLog.verify(path: file).firstBrokenRowID, 30)
  }

  func testRetentionByAgeKeepsVerifyGreen() throws {
    let now = Date()
    let file = try makeLog(rows: 12) { n in now.addingTimeInterval(n <= 8 ? -86400 * 10 : -60) }
    let log = try open(file)
    XCTAssertEqual(try log.applyRetention(maximumAge: 86400, maximumRows: nil), 8)
    _ = try log.appendAndWait(record(13))
    log.close()
    let report = try AuditLog.verify(path: file)
    XCTAssertTrue(report.isValid, report.reason ?? "")
    XCTAssertEqual(report.rowsChecked, 5)
    XCTAssertEqual(try AuditLog.tail(path: file, count: 100).first?.id, 9)
  }

  func testRetentionOfEveryRowThenAppend() throws {
    let file = try makeLog(rows: 4)
    let log = try open(file)
    XCTAssertEqual(try log.applyRetention(maximumAge: nil, maximumRows: 0), 4)
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
    XCTAssertEqual(try log.appendAndWait(record(5)), 5)
    log.close()
    let report = try AuditLog.verify(path: file)
    XCTAssertTrue(report.isValid, report.reason ?? "")
    XCTAssertEqual(report.headID, 5)
  }

  func testAutomaticRetentionAtOpen() throws {
    let file = try makeLog(rows: 10)
    let log = try AuditLog(
      configuration: AuditLogConfiguration(path: file, retention: AuditRetention(maximumRows: 3)))
    log.close()
    let report = try AuditLog.verify(path: file)
    XCTAssertTrue(report.isValid)
    XCTAssertEqual(report.rowsChecked, 3)
  }

  func testEditedCheckpointIsDetected() throws {
    for edit in [
      "UPDATE checkpoints SET deleted_rows = 1",
      "UPDATE checkpoints SET through_id = through_id + 1",
      "UPDATE checkpoints SET through_hash = '\(String(repeating: "b", count: 64))'",
    ] {
      let file = try makeLog(rows: 10)
      let log = try open(file)
      try log.applyRetention(maximumAge: nil, maximumRows: 4)
      log.close()
      try tamper(file, edit)
      let report = try AuditLog.verify(path: file)
      XCTAssertEqual(report.firstBrokenCheckpointID, 1, edit)
      XCTAssertFalse(report.isValid)
      try FileManager.default.removeItem(atPath: file)
      for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
    }
  }

  func testDeletedCheckpointIsDetected() throws {
    let file = try makeLog(rows: 10)
    let log = try open(file)
    try log.applyRetention(maximumAge: nil, maximumRows: 6)
    log.close()
    try tamper(file, "DELETE FROM checkpoints")
    XCTAssertEqual(try AuditLog.verify(path: file).firstBrokenRowID, 5)
  }

  func testRetentionRefusesToDeleteTamperedRows() throws {
    let file = try makeLog(rows: 10)
    try tamper(file, "UPDATE decisions SET decision = 'accept' WHERE id = 3")
    let log = try open(file)
    XCTAssertEqual(
      auditError { try log.applyRetention(maximumAge: nil, maximumRows: 2) }?.code, .verification)
    log.close()
    XCTAssertEqual(try AuditLog.verify(path: file).firstBrokenRowID, 3, "nothing was deleted")
  }
}
