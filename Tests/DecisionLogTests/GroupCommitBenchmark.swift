import DecisionLog
import Foundation
import XCTest

/// Group-commit throughput, printed and not asserted (timings depend on the disk).
///
/// Run with `CURVALID_AUDIT_BENCH=1 swift test --filter GroupCommitBenchmark`; the figures are in
/// docs/audit-log.md.
final class GroupCommitBenchmark: AuditLogTestCase {
  func testThroughput() async throws {
    guard ProcessInfo.processInfo.environment["CURVALID_AUDIT_BENCH"] != nil else {
      throw XCTSkip("set CURVALID_AUDIT_BENCH=1 to run the group-commit benchmark")
    }
    let total = 10_000
    // (durability, concurrent tasks, linger, maximum batch); batch 1 = no group commit, for contrast.
    for (durability, tasks, interval, batch) in [
      (AuditDurability.durable, 1, 0.002, 256), (.durable, 8, 0.002, 1), (.durable, 8, 0.0, 256),
      (.durable, 8, 0.002, 256), (.durable, 64, 0.002, 256), (.async, 8, 0.002, 256),
    ] {
      let file = path("bench-\(durability)-\(tasks)-\(interval)-\(batch).db")
      let log = try AuditLog(
        configuration: AuditLogConfiguration(
          path: file, durability: durability, groupCommitInterval: interval, maximumBatch: batch))
      let count = tasks == 1 ? 1000 : total
      let start = ContinuousClock.now
      try await withThrowingTaskGroup(of: Void.self) { group in
        for t in 0..<tasks {
          group.addTask {
            for i in stride(from: t, to: count, by: tasks) { _ = try await log.append(sampleRecord(i)) }
          }
        }
        try await group.waitForAll()
      }
      try log.flush()
      let elapsed = ContinuousClock.now - start
      let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
      log.close()
      XCTAssertTrue(try AuditLog.verify(path: file).isValid)
      print(
        "audit bench: \(durability) tasks=\(tasks) linger=\(interval * 1000) ms batch≤\(batch): \(count) rows in "
          + String(format: "%.2f s = %.0f rows/s", seconds, Double(count) / seconds))
    }
  }
}
