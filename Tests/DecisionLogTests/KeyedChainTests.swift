import DecisionLog
import Foundation
import XCTest

/// The keyed (HMAC-SHA-256) hash chain: only the key's holder can extend or recompute it.
final class KeyedChainTests: AuditLogTestCase {
  /// Two different 32-byte keys.
  private func keys() throws -> (AuditChainKey, AuditChainKey) {
    (
      try AuditChainKey(bytes: Array("0123456789abcdef0123456789abcdef".utf8)),
      try AuditChainKey(bytes: Array("fedcba9876543210fedcba9876543210".utf8))
    )
  }

  private func openKeyed(_ file: String, key: AuditChainKey?) throws -> AuditLog {
    try AuditLog(
      configuration: AuditLogConfiguration(
        path: file, storePromptText: true, groupCommitInterval: 0.001, chainKey: key))
  }

  /// A keyed log with `rows` rows (record `edited` gets another score), closed.
  private func makeLog(_ name: String, key: AuditChainKey?, rows: Int = 8, edited: Int? = nil) throws
    -> String
  {
    let file = path(name)
    let log = try openKeyed(file, key: key)
    for n in 1...rows {
      var record = record(n)
      if n == edited { record.score = 0.01 }
      _ = try log.appendAndWait(record)
    }
    log.close()
    return file
  }

  func testKeyedLogVerifiesOnlyWithItsKey() throws {
    let (key, otherKey) = try keys()
    let file = try makeLog("keyed.db", key: key)
    let report = try AuditLog.verify(path: file, key: key)
    XCTAssertTrue(report.isValid)
    XCTAssertEqual(report.rowsChecked, 8)
    let missing = auditError { _ = try AuditLog.verify(path: file) }
    XCTAssertEqual(missing?.code, .key)
    XCTAssertTrue(
      missing?.message.contains("key id \(key.identifier)") == true, "\(String(describing: missing))")
    let wrong = auditError { _ = try AuditLog.verify(path: file, key: otherKey) }
    XCTAssertEqual(wrong?.code, .key)
    XCTAssertTrue(wrong?.message.contains(otherKey.identifier) == true, "\(String(describing: wrong))")
    // The same records unkeyed chain to other hashes.
    let plain = try makeLog("plain.db", key: nil)
    XCTAssertNotEqual(try AuditLog.verify(path: plain).headHash, report.headHash)
    XCTAssertEqual(auditError { _ = try AuditLog.verify(path: plain, key: key) }?.code, .key)
  }

  func testOpeningChecksTheKeyAndAnEmptyLogAdoptsOne() throws {
    let (key, otherKey) = try keys()
    let file = try makeLog("keyed.db", key: key)
    XCTAssertEqual(auditError { _ = try openKeyed(file, key: nil) }?.code, .key)
    XCTAssertEqual(auditError { _ = try openKeyed(file, key: otherKey) }?.code, .key)
    // Reopened with its key, it extends the same chain.
    let log = try openKeyed(file, key: key)
    _ = try log.appendAndWait(record(9))
    log.close()
    XCTAssertEqual(try AuditLog.verify(path: file, key: key).rowsChecked, 9)
    // An unkeyed log with rows cannot take a key; an empty one records it.
    let plain = try makeLog("plain.db", key: nil)
    XCTAssertEqual(auditError { _ = try openKeyed(plain, key: key) }?.code, .key)
    let empty = path("empty.db")
    try openKeyed(empty, key: nil).close()
    let adopted = try openKeyed(empty, key: key)
    _ = try adopted.appendAndWait(record(1))
    adopted.close()
    XCTAssertTrue(try AuditLog.verify(path: empty, key: key).isValid)
  }

  func testARewriteWithoutTheKeyIsDetected() throws {
    let (key, _) = try keys()
    let file = try makeLog("keyed.db", key: key)
    // Whoever can write the file but has no key edits row 4 and recomputes every hash the only
    // way open to them, as an unkeyed chain (here: a log of the edited records), then copies it in.
    let forged = try makeLog("forged.db", key: nil, edited: 4)
    let handle = try AuditDatabaseHandle(path: file)
    try handle.execute(
      """
      ATTACH DATABASE '\(forged)' AS forged;
      DELETE FROM decisions;
      INSERT INTO decisions SELECT * FROM forged.decisions;
      """)
    let report = try AuditLog.verify(path: file, key: key)
    XCTAssertFalse(report.isValid)
    XCTAssertEqual(report.firstBrokenRowID, 1)
    XCTAssertEqual(report.reason, "hash does not match the row's contents")
    // Removing the key's record as well only turns it into a log the key does not fit.
    try handle.execute("DELETE FROM meta WHERE key IN ('chain', 'chain_key_id')")
    XCTAssertEqual(auditError { _ = try AuditLog.verify(path: file, key: key) }?.code, .key)
  }

  func testRetentionCheckpointsAreKeyedToo() throws {
    let (key, _) = try keys()
    let file = try makeLog("keyed.db", key: key, rows: 10)
    let log = try openKeyed(file, key: key)
    XCTAssertEqual(try log.applyRetention(maximumAge: nil, maximumRows: 4), 6)
    log.close()
    let report = try AuditLog.verify(path: file, key: key)
    XCTAssertTrue(report.isValid, report.reason ?? "")
    XCTAssertEqual(report.checkpointsChecked, 1)
    XCTAssertEqual(report.rowsChecked, 4)
    // An edited checkpoint is caught under the key.
    try AuditDatabaseHandle(path: file).execute("UPDATE checkpoints SET deleted_rows = 5")
    XCTAssertEqual(try AuditLog.verify(path: file, key: key).firstBrokenCheckpointID, 1)
  }

  func testKeyFilesAreCheckedAndLineBreaksIgnored() throws {
    let (key, otherKey) = try keys()
    let url = directory.appendingPathComponent("key")
    try Data("0123456789abcdef0123456789abcdef\n".utf8).write(to: url)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
    XCTAssertEqual(try AuditChainKey(contentsOfFile: url.path), key)
    XCTAssertEqual(key.identifier.count, 16)
    XCTAssertNotEqual(key.identifier, otherKey.identifier)
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
    let shared = auditError { _ = try AuditChainKey(contentsOfFile: url.path) }
    XCTAssertEqual(shared?.code, .invalidInput)
    XCTAssertTrue(shared?.message.contains("chmod 600") == true, "\(String(describing: shared))")
    try Data("short\n".utf8).write(to: url)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
    XCTAssertEqual(auditError { _ = try AuditChainKey(contentsOfFile: url.path) }?.code, .invalidInput)
    XCTAssertEqual(auditError { _ = try AuditChainKey(contentsOfFile: url.path + ".missing") }?.code, .open)
    // A link to a private key file is read through; the link's own mode does not count.
    try Data("0123456789abcdef0123456789abcdef".utf8).write(to: url)
    let link = directory.appendingPathComponent("key-link").path
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: url.path)
    XCTAssertEqual(try AuditChainKey(contentsOfFile: link), key)
  }
}
