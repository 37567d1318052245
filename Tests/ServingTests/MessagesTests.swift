import Detection
import Foundation
import Hashing
import Serving
import XCTest

/// `"messages"` requests: each untrusted message of a conversation judged on its own, with the
/// fake scorer (score = share of the words that are "ignore", threshold 0.5).
final class MessagesTests: ServerTestCase {
  private func client(
    _ configuration: ServerConfiguration = testConfiguration(), recorder: (any DecisionRecorder)? = nil
  ) throws -> TestClient {
    try TestClient(port: start(configuration, recorder: recorder).1)
  }

  func testEachUntrustedMessageIsJudgedAloneAndAudited() throws {
    let recorder = MemoryRecorder()
    let client = try client(recorder: recorder)
    // The system and assistant messages would be rejected if judged; the tool result's text parts
    // are joined by a line break and its image part is not read.
    let reply = try client.request(
      #"{"id":"m1","client":"gw","messages":[{"role":"system","content":"ignore ignore"},"#
        + #"{"role":"user","content":"hello there"},{"role":"assistant","content":"ignore ignore"},"#
        + #"{"role":"tool","content":[{"type":"text","text":"ignore"},{"type":"image_url","image_url":{"url":"x"}},"#
        + #"{"type":"text","text":"ignore that"}]},{"role":"user","content":null},{"role":"user","content":"  "}]}"#
    )
    XCTAssertEqual(reply["id"] as? String, "m1")
    XCTAssertEqual(reply["decision"] as? String, "reject")
    XCTAssertEqual(try XCTUnwrap(reply["score"] as? Double), 2.0 / 3.0, accuracy: 1e-6)
    XCTAssertEqual(reply["threshold"] as? Double, 0.5)
    XCTAssertEqual(reply["model"] as? String, "fake0001")
    XCTAssertNotNil(reply["latency_ms"] as? Double)
    let messages = try XCTUnwrap(reply["messages"] as? [[String: Any]])
    XCTAssertEqual(messages.compactMap { $0["index"] as? Int }, [1, 3])
    XCTAssertEqual(messages.compactMap { $0["role"] as? String }, ["user", "tool"])
    XCTAssertEqual(messages.compactMap { $0["decision"] as? String }, ["accept", "reject"])
    XCTAssertEqual(messages.compactMap { $0["audit_id"] as? Int }, [1, 2])
    XCTAssertEqual(messages.compactMap { $0["tokens"] as? Int }, [4, 5])
    XCTAssertNil(messages[0]["explanation"])

    let entries = recorder.entries
    XCTAssertEqual(entries.count, 2)
    XCTAssertEqual(entries.map(\.requestID), ["m1", "m1"])
    XCTAssertEqual(entries.map(\.client), ["gw", "gw"])
    XCTAssertEqual(
      entries.map(\.promptSHA256),
      [SHA256.hexDigest(of: "hello there"), SHA256.hexDigest(of: "ignore\nignore that")])
    XCTAssertEqual(entries.map(\.decision), ["accept", "reject"])
    XCTAssertEqual(entries.map(\.messageIndex), [1, 3])
    XCTAssertEqual(entries.map(\.role), ["user", "tool"])

    // An ordinary conversation is accepted; explanations come per message.
    let accepted = try client.request(
      #"{"id":2,"explain":true,"messages":[{"role":"user","content":"hi"},{"role":"USER","content":"thanks a lot"}]}"#
    )
    XCTAssertEqual(accepted["id"] as? Int, 2)
    XCTAssertEqual(accepted["decision"] as? String, "accept")
    let judged = try XCTUnwrap(accepted["messages"] as? [[String: Any]])
    XCTAssertEqual(judged.compactMap { $0["audit_id"] as? Int }, [3, 4])
    XCTAssertEqual(judged.filter { $0["explanation"] is [String: Any] }.count, 2)

    // Statistics count each judged message as a decision.
    let stats = try client.request(#"{"op":"stats"}"#)
    let decisions = try XCTUnwrap(stats["decisions"] as? [String: Int])
    XCTAssertEqual(decisions["accept"], 3)
    XCTAssertEqual(decisions["reject"], 1)

    // A prompt request's row names no message.
    _ = try client.request(#"{"id":3,"prompt":"hello"}"#)
    let prompt = try XCTUnwrap(recorder.entries.last)
    XCTAssertEqual(prompt.requestID, "3")
    XCTAssertNil(prompt.messageIndex)
    XCTAssertNil(prompt.role)
  }

  func testWithoutTrustedRolesEveryMessageIsJudged() throws {
    let client = try client(testConfiguration { $0.trustedRoles = [] })
    let reply = try client.request(
      #"{"id":"t","messages":[{"role":"system","content":"ignore ignore"},{"role":"user","content":"hello there"},"#
        + #"{"role":"assistant","content":"fine thanks"}]}"#)
    XCTAssertEqual(reply["decision"] as? String, "reject", "the system message is judged too")
    let messages = try XCTUnwrap(reply["messages"] as? [[String: Any]])
    XCTAssertEqual(messages.compactMap { $0["index"] as? Int }, [0, 1, 2])
    XCTAssertEqual(messages.compactMap { $0["decision"] as? String }, ["reject", "accept", "accept"])
  }

  func testMalformedMessagesGetTheirCodeAndNameTheMessage() throws {
    let client = try client(testConfiguration { $0.maxPromptScalars = 20 })
    let many = (0...64).map { _ in #"{"role":"user","content":"hi there"}"# }.joined(separator: ",")
    let cases: [(line: String, code: String, mentions: String)] = [
      (#"{"id":"a","prompt":"hi","messages":[{"role":"user","content":"hi"}]}"#, "wrong_type", "either"),
      (#"{"id":"a","messages":"hi"}"#, "wrong_type", "array"),
      (#"{"id":"a","messages":["hi"]}"#, "wrong_type", "messages[0]"),
      (#"{"id":"a","messages":[{"content":"hi"}]}"#, "wrong_type", "messages[0].role"),
      (#"{"id":"a","messages":[{"role":"user","content":5}]}"#, "wrong_type", "messages[0].content"),
      (#"{"id":"a","messages":[{"role":"user","content":["hi"]}]}"#, "wrong_type", "parts"),
      (
        #"{"id":"a","messages":[{"role":"user","content":[{"type":"text","text":1}]}]}"#, "wrong_type", "text"
      ),
      (#"{"id":"a","messages":[]}"#, "missing_prompt", "no message to judge"),
      (
        #"{"id":"a","messages":[{"role":"system","content":"hi there"},{"role":"assistant","content":"ok"}]}"#,
        "missing_prompt", "no message to judge"
      ),
      (
        #"{"id":"a","messages":[{"role":"user","content":"hi"},{"role":"tool","content":"one two three four five six"}]}"#,
        "prompt_too_long", "messages[1]"
      ),
      (#"{"id":"a","messages":["# + many + "]}", "too_many_messages", "64"),
      (
        #"{"id":"a","messages":[{"role":"user","content":"hi"},{"role":"user","content":"please FAIL"}]}"#,
        "internal", "messages[1]"
      ),
    ]
    for (index, testCase) in cases.enumerated() {
      let reply = try client.request(testCase.line)
      XCTAssertEqual(reply.errorCode, testCase.code, "case \(index): \(reply)")
      XCTAssertEqual(reply["id"] as? String, "a", "case \(index)")
      let message = (reply["error"] as? [String: Any])?["message"] as? String ?? ""
      XCTAssertTrue(message.contains(testCase.mentions), "case \(index): \(message)")
    }
    // "prompt": null beside "messages" is no prompt.
    let reply = try client.request(#"{"id":"b","prompt":null,"messages":[{"role":"user","content":"hi"}]}"#)
    XCTAssertEqual(reply["decision"] as? String, "accept")
  }

  func testARequestWhoseMessagesDoNotFitTheQueueIsAnsweredByPolicy() throws {
    for policy in OverloadPolicy.allCases {
      let recorder = MemoryRecorder()
      let client = try client(
        testConfiguration {
          $0.queueCapacity = 2
          $0.overloadPolicy = policy
        }, recorder: recorder)
      let messages = (0..<3).map { #"{"role":"user","content":"hello \#($0)"}"# }.joined(separator: ",")
      let reply = try client.request(#"{"id":"o","messages":["# + messages + "]}")
      XCTAssertEqual(reply["overloaded"] as? Bool, true)
      XCTAssertEqual(reply["decision"] as? String, policy == .failClosed ? "reject" : "accept")
      // Two messages fit.
      let fits = try client.request(
        #"{"id":"f","messages":[{"role":"user","content":"a b"},{"role":"tool","content":"c d"}]}"#)
      XCTAssertNil(fits["overloaded"])
      XCTAssertEqual((fits["messages"] as? [Any])?.count, 2)
      for server in servers { try server.stop() }
      servers.removeAll()
      let overloaded = recorder.entries.filter { $0.error == "overloaded" }
      XCTAssertEqual(overloaded.count, 3)
      // Overload rows are written in the background, in any order.
      XCTAssertEqual(overloaded.compactMap(\.messageIndex).sorted(), [0, 1, 2])
      XCTAssertEqual(overloaded.map(\.role), ["user", "user", "user"])
    }
  }

  func testAuditFailureFailsClosedForTheWholeRequest() throws {
    let closed = try client(
      testConfiguration { $0.auditFailurePolicy = .failClosed }, recorder: FailingRecorder())
    let reply = try closed.request(#"{"id":"a","messages":[{"role":"user","content":"hello"}]}"#)
    XCTAssertEqual(reply.errorCode, "internal")
    let open = try client(
      testConfiguration { $0.auditFailurePolicy = .continue }, recorder: FailingRecorder())
    let kept = try open.request(#"{"id":"b","messages":[{"role":"user","content":"hello"}]}"#)
    XCTAssertEqual(kept["decision"] as? String, "accept")
    let message = try XCTUnwrap((kept["messages"] as? [[String: Any]])?.first)
    XCTAssertEqual(message["audited"] as? Bool, false)
    XCTAssertTrue(message["audit_id"] is NSNull)
  }
}
