import DecisionLog
import Foundation
import TestSupport
import XCTest

/// The stored hashes match an independent implementation of docs/audit-log.md's "Hash chain"
/// (`tooling/golden/make_audit_golden.py`, which wrote `Fixtures/audit/chain.json`): prompt rows
/// in the version-1 form, message rows in the version-2 form, unkeyed and keyed.
final class ChainGoldenTests: AuditLogTestCase {
  private struct Golden {
    var records: [AuditRecord]
    var unkeyed: [String]
    var keyed: [String]
    var key: AuditChainKey
  }

  private func golden() throws -> Golden {
    let data = try Data(contentsOf: Fixtures.url("audit/chain.json"))
    let document = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    let rows = try XCTUnwrap(document["rows"] as? [[String: Any]])
    let hashes = try XCTUnwrap(document["hashes"] as? [String: [String]])
    let keyText = try XCTUnwrap(document["key_utf8"] as? String)
    func text(_ row: [String: Any], _ name: String) -> String? { row[name] as? String }
    func number(_ row: [String: Any], _ name: String) -> Double? { (row[name] as? NSNumber)?.doubleValue }
    func integer(_ row: [String: Any], _ name: String) -> Int? { (row[name] as? NSNumber)?.intValue }
    let records = try rows.map { row in
      let milliseconds = try XCTUnwrap(row["time_ms"] as? NSNumber).int64Value
      return AuditRecord(
        time: Date(timeIntervalSince1970: Double(milliseconds) / 1000), requestID: text(row, "request_id"),
        client: text(row, "client"), peer: text(row, "peer"),
        promptSHA256: try XCTUnwrap(text(row, "prompt_sha256")), promptText: text(row, "prompt_text"),
        tokens: integer(row, "tokens"), score: number(row, "score"), threshold: number(row, "threshold"),
        decision: text(row, "decision"), featuresJSON: text(row, "features"), modelID: text(row, "model"),
        latencyMilliseconds: number(row, "latency_ms"), error: text(row, "error"),
        shadowOf: (row["shadow_of"] as? NSNumber)?.int64Value, messageIndex: integer(row, "message_index"),
        role: text(row, "role"))
    }
    return Golden(
      records: records, unkeyed: try XCTUnwrap(hashes["unkeyed"]), keyed: try XCTUnwrap(hashes["keyed"]),
      key: try AuditChainKey(bytes: Array(keyText.utf8)))
  }

  private func storedHashes(_ records: [AuditRecord], key: AuditChainKey?) throws -> [String] {
    let file = path(key == nil ? "unkeyed.db" : "keyed.db")
    let log = try AuditLog(
      configuration: AuditLogConfiguration(
        path: file, storePromptText: true, groupCommitInterval: 0.001, chainKey: key))
    for record in records { _ = try log.appendAndWait(record) }
    log.close()
    XCTAssertTrue(try AuditLog.verify(path: file, key: key).isValid)
    let stored = try AuditLog.tail(path: file, count: records.count)
    XCTAssertEqual(stored.map(\.record), records, "rows read back as written")
    return stored.map(\.hash)
  }

  func testUnkeyedHashesMatchTheIndependentImplementation() throws {
    let golden = try golden()
    XCTAssertEqual(golden.records.count, 5)
    XCTAssertEqual(
      golden.records.map { $0.role != nil || $0.messageIndex != nil }, [false, true, false, true, true])
    XCTAssertEqual(try storedHashes(golden.records, key: nil), golden.unkeyed)
  }

  func testKeyedHashesMatchTheIndependentImplementation() throws {
    let golden = try golden()
    XCTAssertEqual(try storedHashes(golden.records, key: golden.key), golden.keyed)
    XCTAssertNotEqual(golden.keyed, golden.unkeyed)
  }
}
