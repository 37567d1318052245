import DecisionLog
import Foundation
import Hashing
import XCTest

/// `AuditLog.summary` on a log with every kind of row: prompt and message decisions, overload
/// answers, failed requests and shadow rows.
final class SummaryTests: AuditLogTestCase {
  /// A served (or shadow) row at `second` seconds after `sampleTime`.
  private func row(
    _ second: Int, decision: String?, client: String? = nil, model: String = "served01", error: String? = nil,
    latency: Double? = nil, role: String? = nil, index: Int? = nil, shadowOf: Int64? = nil
  ) -> AuditRecord {
    AuditRecord(
      time: sampleTime.addingTimeInterval(Double(second)), requestID: "r\(second)", client: client,
      peer: "unix",
      promptSHA256: SHA256.hexDigest(of: "prompt \(second)"), decision: decision, modelID: model,
      latencyMilliseconds: latency, error: error, shadowOf: shadowOf, messageIndex: index, role: role)
  }

  private func makeLog() throws -> String {
    let file = path()
    let log = try open(file)
    let rows = [
      row(0, decision: "accept", client: "gw-a", latency: 10),  // 1
      row(1, decision: "reject", client: "gw-a", latency: 20),  // 2
      row(2, decision: "reject", client: "gw-b", latency: 30, role: "tool", index: 2),  // 3
      row(3, decision: "accept", client: "gw-b", latency: 40, role: "user", index: 1),  // 4
      row(4, decision: "reject", client: "gw-b", error: "overloaded", latency: 0.5),  // 5
      row(5, decision: nil, error: "internal"),  // 6
      row(6, decision: "accept", client: "gw-c", model: "older001", latency: 50),  // 7
      row(7, decision: "reject", model: "shadow01", shadowOf: 2),  // agrees with 2
      row(8, decision: "accept", model: "shadow01", shadowOf: 3),  // disagrees with 3
      row(9, decision: "accept", model: "shadow01", shadowOf: 99),  // its row is gone
    ]
    for record in rows { _ = try log.appendAndWait(record) }
    log.close()
    return file
  }

  func testCountsEveryKindOfRow() throws {
    let summary = try AuditLog.summary(path: try makeLog())
    XCTAssertEqual(summary.rows, 10)
    XCTAssertEqual(summary.firstMilliseconds, 1_700_000_000_123)
    XCTAssertEqual(summary.lastMilliseconds, 1_700_000_009_123)
    XCTAssertEqual(summary.served, AuditSummary.Counts(accept: 3, reject: 3, failed: 1))
    XCTAssertEqual(try XCTUnwrap(summary.served.rejectRate), 0.5, accuracy: 1e-12)
    XCTAssertEqual(summary.errors, ["overloaded": 1, "internal": 1])
    XCTAssertEqual(
      summary.models,
      [
        "served01": AuditSummary.Counts(accept: 2, reject: 3, failed: 1),
        "older001": AuditSummary.Counts(accept: 1),
      ])
    XCTAssertEqual(
      summary.roles, ["tool": AuditSummary.Counts(reject: 1), "user": AuditSummary.Counts(accept: 1)])
    XCTAssertEqual(
      summary.topClients,
      [
        AuditSummary.Client(client: "gw-b", counts: AuditSummary.Counts(accept: 1, reject: 2)),
        AuditSummary.Client(client: "gw-a", counts: AuditSummary.Counts(accept: 1, reject: 1)),
        AuditSummary.Client(client: nil, counts: AuditSummary.Counts(failed: 1)),
        AuditSummary.Client(client: "gw-c", counts: AuditSummary.Counts(accept: 1)),
      ])
    XCTAssertEqual(summary.shadowRows, 3)
    XCTAssertEqual(summary.shadowCompared, 2)
    XCTAssertEqual(summary.shadowAgreements, 1)
    // Latencies 0.5, 10, 20, 30, 40, 50: nearest ranks 3, 6 and 6.
    let latency = try XCTUnwrap(summary.latencyMilliseconds)
    XCTAssertEqual([latency.p50, latency.p90, latency.p99], [20, 50, 50])
  }

  func testSinceAndClientLimit() throws {
    let file = try makeLog()
    let late = try AuditLog.summary(path: file, since: sampleTime.addingTimeInterval(6), clients: 1)
    XCTAssertEqual(late.rows, 4)
    XCTAssertEqual(late.served, AuditSummary.Counts(accept: 1))
    XCTAssertEqual(late.topClients.map(\.client), ["gw-c"])
    // The shadowed rows are before `since` but still in the log, so they are compared.
    XCTAssertEqual([late.shadowRows, late.shadowCompared, late.shadowAgreements], [3, 2, 1])

    let none = try AuditLog.summary(path: file, since: sampleTime.addingTimeInterval(3600))
    XCTAssertEqual(none.rows, 0)
    XCTAssertNil(none.firstMilliseconds)
    XCTAssertNil(none.served.rejectRate)
    XCTAssertNil(none.latencyMilliseconds)
    XCTAssertTrue(none.topClients.isEmpty)
  }

  func testAVersion1LogHasNoRoles() throws {
    let file = path("v1.db")
    let log = try open(file)
    _ = try log.appendAndWait(row(0, decision: "reject", latency: 1))
    log.close()
    try AuditDatabaseHandle(path: file).rewriteAsSchemaVersion1()
    let summary = try AuditLog.summary(path: file)
    XCTAssertEqual(summary.served, AuditSummary.Counts(reject: 1))
    XCTAssertTrue(summary.roles.isEmpty)
    XCTAssertEqual(auditError { _ = try AuditLog.summary(path: path("missing.db")) }?.code, .open)
  }
}
