import DecisionLog
import Foundation
import XCTest

/// An audit log that cannot be written is a visible error, never silent loss.
final class FailureTests: AuditLogTestCase {
  /// Makes `file` unwritable even for root (`chattr +i`), returning the undo action.
  private func makeReadOnly(_ file: String) throws -> () -> Void {
    try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: file)
    guard getuid() == 0 else { return {} }
    guard chattr("+i", file) else {
      throw XCTSkip("running as root without chattr: cannot make a file read-only")
    }
    return { _ = self.chattr("-i", file) }
  }

  private func chattr(_ flag: String, _ file: String) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
    process.arguments = [flag, file]
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
  }

  func testReadOnlyDatabaseIsRefused() throws {
    let file = path()
    let log = try open(file)
    _ = try log.appendAndWait(record(1))
    log.close()
    let undo = try makeReadOnly(file)
    defer { undo() }
    let error = auditError { _ = try open(file) }
    XCTAssertEqual(error?.code, .readOnly)
    XCTAssertTrue(error?.message.contains(file) ?? false)
    // Readers still work on a read-only file.
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
  }

  func testDatabaseReplacedWhileOpenMakesAppendThrow() throws {
    let file = path()
    let log = try open(file)
    _ = try log.appendAndWait(record(1))
    try FileManager.default.moveItem(atPath: file, toPath: path("moved.db"))
    try Data("not the log".utf8).write(to: URL(fileURLWithPath: file))
    let error = auditError { _ = try log.appendAndWait(record(2)) }
    XCTAssertEqual(error?.code, .readOnly)
    XCTAssertEqual(log.statistics().failedCommits, 1)
    log.close()
  }

  func testDirectoryRemovedWhileOpenMakesAppendThrow() async throws {
    let sub = directory.appendingPathComponent("gone")
    try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
    let log = try open(sub.appendingPathComponent("audit.db").path)
    _ = try await log.append(record(1))
    try FileManager.default.removeItem(at: sub)
    do {
      _ = try await log.append(record(2))
      XCTFail("append succeeded on a deleted database")
    } catch {
      XCTAssertEqual(error.code, .readOnly, error.message)
    }
    log.close()
  }

  func testLockedDatabaseMakesAppendThrowBusyThenRecovers() throws {
    let file = path()
    let log = try open(file, busyTimeoutMilliseconds: 50)
    _ = try log.appendAndWait(record(1))
    let other = try AuditDatabaseHandle(path: file)
    try other.execute("BEGIN EXCLUSIVE")
    let error = auditError { _ = try log.appendAndWait(record(2)) }
    XCTAssertEqual(error?.code, .busy)
    XCTAssertEqual(error.map { $0.sqliteCode & 0xff }, 5)
    try other.execute("COMMIT")
    XCTAssertEqual(try log.appendAndWait(record(3)), 2)
    log.close()
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
  }

  func testAsyncModeFailureIsReportedByFlushAndCounted() throws {
    let file = path()
    let log = try open(file, durability: .async, busyTimeoutMilliseconds: 20)
    let other = try AuditDatabaseHandle(path: file)
    try other.execute("BEGIN EXCLUSIVE")
    XCTAssertEqual(try log.appendAndWait(record(1)), AuditLog.pendingID)
    let error = auditError { try log.flush() }
    XCTAssertEqual(error?.code, .busy)
    XCTAssertEqual(log.statistics().lostRows, 1)
    // A later failure is thrown by the next append (whose own row is then not queued).
    _ = try log.appendAndWait(record(2))
    let deadline = Date(timeIntervalSinceNow: 10)
    while log.statistics().failedCommits < 2, Date() < deadline { usleep(1000) }
    XCTAssertEqual(auditError { _ = try log.appendAndWait(record(3)) }?.code, .busy)
    XCTAssertEqual(log.statistics().lostRows, 2)
    try other.execute("COMMIT")
    try log.flush()
    _ = try log.appendAndWait(record(4))
    log.close()
    XCTAssertEqual(try AuditLog.verify(path: file).rowsChecked, 1)
    XCTAssertEqual(try AuditLog.tail(path: file, count: 1).first?.record.requestID, "r4")
  }

  func testSizeCapMakesAppendThrowFull() throws {
    let file = path()
    let log = try open(file, storePromptText: true, maximumDatabaseBytes: 64 * 1024)
    let big = String(repeating: "x", count: 4000)
    var code: AuditLogError.Code?
    for n in 0..<200 {
      do {
        _ = try log.appendAndWait(record(n, text: big + "\(n)"))
      } catch {
        code = error.code
        break
      }
    }
    XCTAssertEqual(code, .full)
    log.close()
    XCTAssertTrue(try AuditLog.verify(path: file).isValid)
  }

  func testMissingDirectoryFailsToOpen() {
    XCTAssertEqual(auditError { _ = try open(path("no/such/dir/audit.db")) }?.code, .open)
  }

  func testAppendAfterCloseThrowsClosed() throws {
    let log = try open(path())
    log.close()
    log.close()
    XCTAssertEqual(auditError { _ = try log.appendAndWait(record(1)) }?.code, .closed)
  }
}
