import Detection
import Foundation
import Serving
import TestSupport
import XCTest

/// A candidate model that rejects everything, to make disagreements easy to count.
final class RejectingScorer: PromptScoring {
  let modelID = "shadow01"

  func score(_ prompts: [String], explain: Bool) -> [Result<Decision, DetectionError>] {
    prompts.map { _ in .success(Decision(score: 0.9, threshold: 0.5, tokens: 3, features: [])) }
  }
}

/// Shadow mode: replies come from the served model only; the candidate's decisions are audited
/// beside them and the agreement rate is reported.
final class ShadowModeTests: ServerTestCase {
  /// A server with `FakeScorer` served and `RejectingScorer` in shadow, and a client of it.
  private func startWithShadow(recorder: MemoryRecorder) throws -> TestClient {
    let server = try Server(
      configuration: testConfiguration(), scorer: FakeScorer(), recorder: recorder, shadow: RejectingScorer())
    try server.start()
    servers.append(server)
    return try TestClient(port: server.tcpPorts.first ?? 0)
  }

  func testShadowDecisionsAreAuditedWithoutChangingReplies() throws {
    let recorder = MemoryRecorder()
    let client = try startWithShadow(recorder: recorder)
    let prompts = ["ignore ignore", "hello there", "ignore this ignore", "what is the time"]
    var served: [(decision: String, auditID: Int)] = []
    for (index, prompt) in prompts.enumerated() {
      let reply = try client.request(#"{"id":\#(index),"prompt":"\#(prompt)"}"#)
      XCTAssertEqual(reply["model"] as? String, "fake0001", "the served model answers")
      served.append((reply["decision"] as? String ?? "", reply["audit_id"] as? Int ?? -1))
    }
    XCTAssertEqual(served.map(\.decision), ["reject", "accept", "reject", "accept"])

    let deadline = Date().addingTimeInterval(10)
    while recorder.entries.count < 8, Date() < deadline { usleep(10_000) }
    let entries = recorder.entries
    XCTAssertEqual(entries.count, 8, "one served and one shadow row per request")
    let shadowRows = entries.filter { $0.modelID == "shadow01" }
    XCTAssertEqual(shadowRows.count, 4)
    XCTAssertTrue(shadowRows.allSatisfy { $0.decision == "reject" })
    XCTAssertEqual(Set(shadowRows.compactMap(\.shadowOf).map(Int.init)), Set(served.map(\.auditID)))
    XCTAssertTrue(entries.filter { $0.modelID == "fake0001" }.allSatisfy { $0.shadowOf == nil })

    let stats = try client.request(#"{"op":"stats"}"#)
    let shadow = try XCTUnwrap(stats["shadow"] as? [String: Any])
    XCTAssertEqual(shadow["model"] as? String, "shadow01")
    XCTAssertEqual(shadow["compared"] as? Int, 4)
    XCTAssertEqual(shadow["agreed"] as? Int, 2)
    XCTAssertEqual(shadow["agreement_rate"] as? Double, 0.5)
    let prometheus = try client.request(#"{"op":"stats","format":"prometheus"}"#)
    XCTAssertTrue((prometheus["text"] as? String ?? "").contains("curvalid_shadow_comparisons_total"))
  }

  func testEachJudgedMessageIsScoredByTheShadowToo() throws {
    let recorder = MemoryRecorder()
    let client = try startWithShadow(recorder: recorder)
    let reply = try client.request(
      #"{"id":"c","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hello there"},"#
        + #"{"role":"tool","content":"the weather is fine"}]}"#)
    XCTAssertEqual(reply["decision"] as? String, "accept", "the served model answers")
    let deadline = Date().addingTimeInterval(10)
    while recorder.entries.count < 4, Date() < deadline { usleep(10_000) }
    let entries = recorder.entries
    XCTAssertEqual(entries.count, 4, "one served and one shadow row per judged message")
    let served = entries.filter { $0.modelID == "fake0001" }
    let shadow = entries.filter { $0.modelID == "shadow01" }
    XCTAssertEqual(served.count, 2)
    XCTAssertEqual(Set(shadow.compactMap(\.shadowOf)), [1, 2])
    XCTAssertEqual(Set(shadow.map(\.promptSHA256)), Set(served.map(\.promptSHA256)))
    for row in shadow {
      let primary = try XCTUnwrap(served.first { $0.promptSHA256 == row.promptSHA256 })
      XCTAssertEqual(row.messageIndex, primary.messageIndex)
      XCTAssertEqual(row.role, primary.role)
    }
    XCTAssertEqual(Set(served.compactMap(\.messageIndex)), [1, 2])
    XCTAssertEqual(Set(served.compactMap(\.role)), ["user", "tool"])
  }

  func testWithoutShadowStatsSayNull() throws {
    let server = try Server(configuration: testConfiguration(), scorer: FakeScorer(), recorder: nil)
    try server.start()
    defer { try? server.stop() }
    let client = try TestClient(port: server.tcpPorts.first ?? 0)
    let stats = try client.request(#"{"op":"stats"}"#)
    XCTAssertTrue(stats["shadow"] is NSNull)
  }
}
