import Detection
import Foundation

/// Collects the outcomes of one `messages` request, whose judged messages are scored as separate
/// jobs (possibly by different workers, in any order).
final class MessageJoin: Sendable {
  /// One message's outcome and the id of the model that produced it.
  typealias Outcome = (result: Result<Decision, DetectionError>, modelID: String)

  private struct State {
    var outcomes: [Outcome?]
    var remaining: Int
  }

  private let state: Locked<State>

  /// A join for `count` messages.
  init(count: Int) {
    state = Locked(State(outcomes: Array(repeating: nil, count: count), remaining: count))
  }

  /// Stores the outcome of the message in `slot`.
  ///
  /// - Returns: Every message's outcome, in order, when this was the last to arrive; else `nil`.
  func add(_ result: Result<Decision, DetectionError>, modelID: String, at slot: Int) -> [Outcome]? {
    state.withLock { state in
      state.outcomes[slot] = (result, modelID)
      state.remaining -= 1
      return state.remaining == 0 ? state.outcomes.compactMap { $0 } : nil
    }
  }
}

extension Router {
  /// Records each judged message's decision (one audit row each, in message order) and posts the
  /// request's reply: `reject` when any message is rejected. A message the scorer failed on
  /// answers the whole request with its error, and nothing is recorded.
  func finishMessages(_ contexts: [ScoreContext], messages: [JudgedMessage], outcomes: [MessageJoin.Outcome])
  {
    guard let first = contexts.first else { return }
    var decisions: [Decision] = []
    for (message, outcome) in zip(messages, outcomes) {
      switch outcome.result {
      case .failure(let error):
        let reply = ReplyError(error)
        statistics.recordError(reply.code)
        post(
          connection: first.connection, sequence: first.sequence,
          bytes: WireProtocol.errorReply(
            id: first.idJSON, ReplyError(reply.code, "messages[\(message.index)]: \(reply.message)")))
        return
      case .success(let decision):
        decisions.append(decision)
      }
    }
    let modelIDs = outcomes.map(\.modelID)
    guard let recorder else {
      replyMessages(
        contexts, messages: messages, decisions: decisions, modelIDs: modelIDs,
        auditIDs: Array(repeating: nil, count: decisions.count),
        audited: Array(repeating: true, count: decisions.count))
      return
    }
    let latency = (monotonicSeconds() - first.receivedAt) * 1_000
    let rows = contexts.indices.map {
      decisionRow(contexts[$0], decision: decisions[$0], modelID: modelIDs[$0], latency: latency)
    }
    audits.enter()
    Task { [rows, audits] in
      var auditIDs: [Int64?] = []
      var audited: [Bool] = []
      for row in rows {
        do {
          auditIDs.append(try await recorder.record(row))
          audited.append(true)
        } catch {
          self.statistics.recordAuditFailure()
          if self.configuration.auditFailurePolicy == .failClosed {
            self.statistics.recordError(.internal)
            self.post(
              connection: first.connection, sequence: first.sequence,
              bytes: WireProtocol.errorReply(id: first.idJSON, ReplyError(.internal, "decision not audited")))
            audits.leave()
            return
          }
          auditIDs.append(nil)
          audited.append(false)
        }
      }
      self.replyMessages(
        contexts, messages: messages, decisions: decisions, modelIDs: modelIDs, auditIDs: auditIDs,
        audited: audited)
      audits.leave()
    }
  }

  /// Posts the reply of a `messages` request: the request's decision, the highest score, and per
  /// judged message its place, role, decision and audit row; then runs the shadow model on each.
  private func replyMessages(
    _ contexts: [ScoreContext], messages: [JudgedMessage], decisions: [Decision], modelIDs: [String],
    auditIDs: [Int64?], audited: [Bool]
  ) {
    guard let first = contexts.first,
      let top = decisions.indices.max(by: { decisions[$0].score < decisions[$1].score })
    else { return }
    let latency = (monotonicSeconds() - first.receivedAt) * 1_000
    for decision in decisions {
      statistics.recordDecision(reject: decision.verdict == .reject, latencyMilliseconds: latency)
    }
    let rejected = decisions.contains { $0.verdict == .reject }
    let entries = decisions.indices.map { slot in
      var fields: [(String, String)] = [
        ("index", "\(messages[slot].index)"), ("role", JSONWriter.string(messages[slot].role)),
      ]
      fields += WireProtocol.decisionMembers(decisions[slot], modelID: modelIDs[slot])
      fields.append(("audit_id", auditIDs[slot].map { "\($0)" } ?? "null"))
      if !audited[slot] { fields.append(("audited", "false")) }
      return JSONWriter.object(fields)
    }
    let reply: [(String, String)] = [
      ("decision", JSONWriter.string((rejected ? Decision.Verdict.reject : .accept).rawValue)),
      ("score", JSONWriter.number(decisions[top].score)),
      ("threshold", JSONWriter.number(decisions[top].threshold)),
      ("model", JSONWriter.string(modelIDs[top])),
      ("messages", "[" + entries.joined(separator: ",") + "]"),
      ("latency_ms", JSONWriter.milliseconds(latency)),
    ]
    post(connection: first.connection, sequence: first.sequence, bytes: members(id: first.idJSON, reply))
    for slot in decisions.indices {
      runShadow(contexts[slot], served: decisions[slot], auditID: auditIDs[slot])
    }
  }
}
