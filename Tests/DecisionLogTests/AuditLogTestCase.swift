import DecisionLog
import Foundation
import Hashing
import TestSupport
import XCTest

/// A temporary directory per test and a record factory.
class AuditLogTestCase: XCTestCase {
  var directory = URL(fileURLWithPath: "/nonexistent")

  override func setUpWithError() throws {
    directory = try makeTemporaryDirectory(prefix: "curvalid-audit")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  /// A database path in the test's directory.
  func path(_ name: String = "audit.db") -> String {
    directory.appendingPathComponent(name).path
  }

  /// Opens a log with a short group-commit interval.
  func open(
    _ path: String, durability: AuditDurability = .durable, storePromptText: Bool = false,
    busyTimeoutMilliseconds: Int = 2000, maximumDatabaseBytes: Int64? = nil
  ) throws -> AuditLog {
    try AuditLog(
      configuration: AuditLogConfiguration(
        path: path, durability: durability, storePromptText: storePromptText, groupCommitInterval: 0.001,
        busyTimeoutMilliseconds: busyTimeoutMilliseconds, maximumDatabaseBytes: maximumDatabaseBytes))
  }

  /// A plausible record for prompt number `n`.
  func record(_ n: Int, time: Date = sampleTime, text: String? = nil) -> AuditRecord {
    sampleRecord(n, time: time, text: text)
  }

  /// Runs `body` and returns the `AuditLogError` it throws (failing when it throws nothing else).
  func auditError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line)
    -> AuditLogError?
  {
    do {
      try body()
      XCTFail("expected an AuditLogError", file: file, line: line)
    } catch let error as AuditLogError {
      return error
    } catch {
      XCTFail("expected an AuditLogError, got \(error)", file: file, line: line)
    }
    return nil
  }
}

/// The default time of test records: 2023-11-14T22:13:20.123Z.
let sampleTime = Date(timeIntervalSince1970: 1_700_000_000.123)

/// A plausible record for prompt number `n`.
func sampleRecord(_ n: Int, time: Date = sampleTime, text: String? = nil) -> AuditRecord {
  let prompt = text ?? "prompt number \(n)"
  return AuditRecord(
    time: time, requestID: "r\(n)", client: "gw-eu-1", peer: "127.0.0.1:5\(n % 1000)",
    promptSHA256: SHA256.hexDigest(of: prompt), promptText: prompt, tokens: 10 + n % 50,
    score: Double(n % 100) / 100, threshold: 0.42, decision: n % 3 == 0 ? "reject" : "accept",
    featuresJSON: #"{"curvature_conv1":0.5,"prompt_lid":\#(n)}"#, modelID: "c0ffee12",
    latencyMilliseconds: 7.9)
}
