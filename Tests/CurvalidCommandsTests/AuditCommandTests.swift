import DecisionLog
import Foundation
import TestSupport
import XCTest

/// `curvalid audit` on a real audit database, run as an operator would.
final class AuditCommandTests: XCTestCase {
  private let directory = FileManager.default.temporaryDirectory
    .appendingPathComponent("audit-command-\(UUID().uuidString)")

  override func setUpWithError() throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  /// A database with `count` decisions one second apart, starting at 2026-01-01T00:00:00Z.
  private func database(count: Int) throws -> String {
    let path = directory.appendingPathComponent("audit.sqlite").path
    let log = try AuditLog(configuration: AuditLogConfiguration(path: path, storePromptText: true))
    for index in 0..<count {
      let prompt = "prompt \(index)"
      _ = try log.appendAndWait(
        AuditRecord(
          time: Date(timeIntervalSince1970: 1_767_225_600 + Double(index)), requestID: "r\(index)",
          peer: "127.0.0.1:1", promptSHA256: String(repeating: "a", count: 64), promptText: prompt, tokens: 4,
          score: 0.25, threshold: 0.5, decision: "accept", modelID: "c0ffee12", latencyMilliseconds: 1))
    }
    log.close()
    return path
  }

  func testSummary() throws {
    let path = try database(count: 5)
    let summary = try BinaryRunner.run(["audit", "summary", path, "--since", "2026-01-01T00:00:02Z"])
    XCTAssertEqual(summary.status, 0, summary.standardError)
    let object = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(summary.output.utf8)) as? [String: Any])
    XCTAssertEqual(object["rows"] as? Int, 3)
    XCTAssertEqual(object["first"] as? String, "2026-01-01T00:00:02.000Z")
    let served = try XCTUnwrap(object["served"] as? [String: Any])
    XCTAssertEqual(served["accept"] as? Int, 3)
    XCTAssertEqual(served["reject_rate"] as? Double, 0)
    XCTAssertNotNil((object["models"] as? [String: Any])?["c0ffee12"])
    XCTAssertEqual((object["top_clients"] as? [Any])?.count, 1)
    XCTAssertTrue((object["shadow"] as? [String: Any])?["agreement_rate"] is NSNull)
    XCTAssertEqual((object["latency_ms"] as? [String: Any])?["p99"] as? Double, 1)

    let usage = try BinaryRunner.run(["audit", "summary", path, "--clients", "-1"])
    XCTAssertEqual(usage.status, 64, usage.standardError)
  }

  func testVerifyTailExportAndLabel() throws {
    let path = try database(count: 5)
    let verify = try BinaryRunner.run(["audit", "verify", path])
    XCTAssertEqual(verify.status, 0, verify.standardError)
    XCTAssertTrue(verify.output.hasPrefix("ok: 5 rows"), verify.output)

    let tail = try BinaryRunner.run(["audit", "tail", path, "--count", "2"])
    XCTAssertEqual(tail.status, 0, tail.standardError)
    let tailRows = tail.output.split(separator: "\n")
    XCTAssertEqual(tailRows.count, 2)
    XCTAssertTrue(tailRows.last?.contains("\"r4\"") ?? false)

    let export = try BinaryRunner.run(["audit", "export", path, "--since", "2026-01-01T00:00:03Z"])
    XCTAssertEqual(export.status, 0, export.standardError)
    let exported = try export.output.split(separator: "\n").map {
      try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    XCTAssertEqual(exported.count, 2)

    let label = try BinaryRunner.run(["audit", "label", path, "2", "adversarial", "--note", "red team"])
    XCTAssertEqual(label.status, 0, label.standardError)
    let labels = try AuditLog.labels(path: path)
    XCTAssertEqual(labels.map(\.label), ["adversarial"])
    XCTAssertEqual(labels.first?.text, "prompt 1")

    let bulk = directory.appendingPathComponent("labels.jsonl")
    try Data("{\"id\":3,\"label\":\"benign\"}\n{\"id\":4,\"label\":\"adversarial\",\"note\":\"x\"}\n".utf8)
      .write(to: bulk)
    XCTAssertEqual(try BinaryRunner.run(["audit", "label", path, "--from", bulk.path]).status, 0)
    XCTAssertEqual(try AuditLog.labels(path: path).count, 3)
    XCTAssertEqual(
      try BinaryRunner.run(["audit", "verify", path]).status, 0, "labels do not break the chain")
  }

  func testKeyFileUnlocksAKeyedLogForVerifyAndLabel() throws {
    let path = directory.appendingPathComponent("keyed.sqlite").path
    let keyFile = directory.appendingPathComponent("key")
    try Data("operator-key-0123456789abcdef\n".utf8).write(to: keyFile)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile.path)
    let key = try AuditChainKey(contentsOfFile: keyFile.path)
    let log = try AuditLog(
      configuration: AuditLogConfiguration(path: path, storePromptText: true, chainKey: key))
    _ = try log.appendAndWait(
      AuditRecord(
        time: Date(timeIntervalSince1970: 1_767_225_600), promptSHA256: String(repeating: "b", count: 64),
        promptText: "keyed prompt", score: 0.9, threshold: 0.5, decision: "reject"))
    log.close()

    let verify = try BinaryRunner.run(["audit", "verify", path, "--key-file", keyFile.path])
    XCTAssertEqual(verify.status, 0, verify.standardError)
    XCTAssertTrue(verify.output.hasPrefix("ok: 1 rows"), verify.output)
    let withoutKey = try BinaryRunner.run(["audit", "verify", path])
    XCTAssertEqual(withoutKey.status, 1)
    XCTAssertTrue(withoutKey.standardError.contains("key id \(key.identifier)"), withoutKey.standardError)
    XCTAssertEqual(try BinaryRunner.run(["audit", "label", path, "1", "adversarial"]).status, 1)
    let label = try BinaryRunner.run(["audit", "label", path, "1", "adversarial", "--key-file", keyFile.path])
    XCTAssertEqual(label.status, 0, label.standardError)
    XCTAssertEqual(try AuditLog.labels(path: path).map(\.label), ["adversarial"])
    // A key file that others may read is refused.
    try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile.path)
    let shared = try BinaryRunner.run(["audit", "verify", path, "--key-file", keyFile.path])
    XCTAssertEqual(shared.status, 1)
    XCTAssertTrue(shared.standardError.contains("chmod 600"), shared.standardError)
  }

  func testVerifyNamesTheFirstEditedRow() throws {
    let path = try database(count: 4)
    let handle = try AuditDatabaseHandle(path: path)
    try handle.execute("UPDATE decisions SET score = 0.99 WHERE id = 3")
    let verify = try BinaryRunner.run(["audit", "verify", path])
    XCTAssertEqual(verify.status, 1)
    XCTAssertTrue(verify.standardError.contains("row 3"), verify.standardError)
  }

  func testUsageAndMissingDatabase() throws {
    XCTAssertEqual(try BinaryRunner.run(["audit"]).status, 64)
    XCTAssertEqual(
      try BinaryRunner.run(["audit", "frob", "x"]).status, 1, "missing database is checked first")
    let path = try database(count: 1)
    XCTAssertEqual(try BinaryRunner.run(["audit", "frob", path]).status, 64)
    XCTAssertEqual(try BinaryRunner.run(["audit", "label", path, "1", "maybe"]).status, 64)
    XCTAssertEqual(try BinaryRunner.run(["audit", "export", path, "--since", "yesterday"]).status, 64)
    let missing = try BinaryRunner.run(["audit", "verify", directory.appendingPathComponent("none.db").path])
    XCTAssertEqual(missing.status, 1)
    XCTAssertEqual(missing.standardError.split(separator: "\n").count, 1)
  }
}
