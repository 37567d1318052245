import Detection
import Foundation
import Hashing

/// Turns parsed requests into replies: answers admin and malformed requests at once, queues score
/// requests, records decisions, and posts the finished replies to the event loop.
final class Router: RequestRouting {
  let configuration: ServerConfiguration
  let models: ModelHolder
  let scheduler: ScoringScheduler
  let recorder: (any DecisionRecorder)?
  let loader: (@Sendable () throws -> any PromptScoring)?
  let statistics: ServerStatistics
  /// The candidate model scored after each reply (shadow mode), never before it.
  let shadow: (any PromptScoring)?
  private let shadowQueue = DispatchQueue(label: "curvalid.shadow", qos: .utility)
  private let shadowPending = Locked(0)
  /// Requests waiting for the shadow model beyond this are skipped (and counted), so a slow
  /// candidate can never build up memory or compete for long.
  static let shadowBacklog = 1_024
  /// Set by `Server.start()` before the first request can arrive.
  let mailbox = Locked<LoopMailbox?>(nil)
  private let adminToken: AdminToken?
  let audits = DispatchGroup()
  private let reloadQueue = DispatchQueue(label: "curvalid.reload")

  init(
    configuration: ServerConfiguration, models: ModelHolder, scheduler: ScoringScheduler,
    recorder: (any DecisionRecorder)?, loader: (@Sendable () throws -> any PromptScoring)?,
    statistics: ServerStatistics, shadow: (any PromptScoring)? = nil
  ) {
    self.shadow = shadow
    self.configuration = configuration
    self.models = models
    self.scheduler = scheduler
    self.recorder = recorder
    self.loader = loader
    self.statistics = statistics
    self.adminToken = configuration.adminToken.map(AdminToken.init)
  }

  /// Waits until every started `record` call has returned, at most `timeout` seconds.
  func waitForAudits(timeout: Double) {
    _ = audits.wait(timeout: .now() + timeout)
  }

  func post(connection: UInt64, sequence: UInt64, bytes: [UInt8]) {
    mailbox.current?.post(.reply(connection: connection, sequence: sequence, bytes: bytes))
  }

  func members(id: String?, _ rest: [(String, String)]) -> [UInt8] {
    WireProtocol.line((id.map { [("id", $0)] } ?? []) + rest)
  }

  func route(_ line: ParsedLine, receivedAt: Double, connection: UInt64, sequence: UInt64, peer: String)
    -> [UInt8]?
  {
    let request: Request
    switch line.request {
    case .failure(let error):
      statistics.recordError(error.code)
      return WireProtocol.errorReply(id: line.idJSON, error)
    case .success(let parsed):
      request = parsed
    }
    switch request {
    case .health:
      return members(
        id: line.idJSON, [("status", "\"ok\""), ("model", JSONWriter.string(models.current.modelID))])
    case .version:
      return members(
        id: line.idJSON,
        [
          ("version", JSONWriter.string(configuration.serviceVersion)), ("protocol", "1"),
          ("model", JSONWriter.string(models.current.modelID)),
        ])
    case .stats(let prometheus):
      var report = StatisticsReport(
        snapshot: statistics.snapshot(), uptime: statistics.uptime, queueDepth: scheduler.depth,
        queueCapacity: configuration.queueCapacity, modelID: models.current.modelID,
        version: configuration.serviceVersion)
      report.shadowModelID = shadow?.modelID
      if prometheus {
        return members(
          id: line.idJSON,
          [("format", "\"prometheus\""), ("text", JSONWriter.string(report.prometheusText()))])
      }
      return members(id: line.idJSON, report.jsonMembers())
    case .reload(let token):
      guard let adminToken, let token, adminToken.matches(token) else {
        statistics.recordError(.unauthorized)
        let message =
          configuration.adminToken == nil
          ? "admin operations are disabled (no admin token configured)" : "a valid admin token is required"
        return WireProtocol.errorReply(id: line.idJSON, ReplyError(.unauthorized, message))
      }
      let id = line.idJSON
      reload { result in
        let bytes: [UInt8]
        switch result {
        case .success(let (model, previous)):
          bytes = self.members(
            id: id,
            [
              ("reloaded", "true"), ("model", JSONWriter.string(model)),
              ("previous_model", JSONWriter.string(previous)),
            ])
        case .failure(let error):
          self.statistics.recordError(.reloadFailed)
          bytes = WireProtocol.errorReply(id: id, ReplyError(.reloadFailed, error.message))
        }
        self.post(connection: connection, sequence: sequence, bytes: bytes)
      }
      return nil
    case .score(let prompt, let client, let explain):
      let context = ScoreContext(
        idJSON: line.idJSON, idText: line.idText, client: client, peer: peer, prompt: prompt,
        receivedAt: receivedAt, receivedAtEpoch: epochMilliseconds(), connection: connection,
        sequence: sequence, messageIndex: nil, role: nil)
      let job = ScoringScheduler.Job(prompt: prompt, explain: explain) { result, modelID in
        self.finish(context, result: result, modelID: modelID)
      }
      if scheduler.submit(job) { return nil }
      return overloaded([context])
    case .scoreMessages(let messages, let client, let explain):
      let receivedAtEpoch = epochMilliseconds()
      let contexts = messages.map { message in
        ScoreContext(
          idJSON: line.idJSON, idText: line.idText, client: client, peer: peer, prompt: message.text,
          receivedAt: receivedAt, receivedAtEpoch: receivedAtEpoch, connection: connection,
          sequence: sequence,
          messageIndex: message.index, role: message.role)
      }
      let join = MessageJoin(count: messages.count)
      let jobs = contexts.indices.map { slot in
        ScoringScheduler.Job(prompt: contexts[slot].prompt, explain: explain) { result, modelID in
          guard let outcomes = join.add(result, modelID: modelID, at: slot) else { return }
          self.finishMessages(contexts, messages: messages, outcomes: outcomes)
        }
      }
      if scheduler.submit(jobs) { return nil }
      return overloaded(contexts)
    }
  }

  /// What a score request carries through the scheduler and the recorder.
  struct ScoreContext: Sendable {
    let idJSON: String?
    let idText: String?
    let client: String?
    let peer: String
    let prompt: String
    let receivedAt: Double
    let receivedAtEpoch: Int64
    let connection: UInt64
    let sequence: UInt64
    /// For a message of a `messages` request: its index in the request's array.
    let messageIndex: Int?
    /// For a message of a `messages` request: its role.
    let role: String?
  }

  /// The audit row's request fields for `context` (the decision fields are filled by the caller).
  func entry(_ context: ScoreContext) -> AuditEntry {
    AuditEntry(
      timeMilliseconds: context.receivedAtEpoch, requestID: context.idText, client: context.client,
      peer: context.peer,
      promptSHA256: SHA256.hexDigest(of: context.prompt),
      promptText: configuration.storePromptText ? context.prompt : nil,
      messageIndex: context.messageIndex, role: context.role)
  }

  /// The overload policy's immediate answer to a request (the contexts of its prompt, or of each of
  /// its judged messages); the audit rows are written in the background.
  private func overloaded(_ contexts: [ScoreContext]) -> [UInt8] {
    let (verdict, modelID) = recordOverloaded(contexts)
    let receivedAt = contexts.first?.receivedAt ?? monotonicSeconds()
    return members(
      id: contexts.first?.idJSON,
      [
        ("decision", JSONWriter.string(verdict.rawValue)), ("overloaded", "true"),
        ("model", JSONWriter.string(modelID)),
        ("latency_ms", JSONWriter.milliseconds((monotonicSeconds() - receivedAt) * 1_000)),
        ("audit_id", "null"),
      ])
  }

  /// Applies the overload policy to the requests (or messages) of `contexts`: counts them and
  /// writes their audit rows in the background.
  ///
  /// - Returns: The policy's verdict and the served model's id.
  private func recordOverloaded(_ contexts: [ScoreContext]) -> (Decision.Verdict, String) {
    let reject = configuration.overloadPolicy == .failClosed
    let verdict = reject ? Decision.Verdict.reject : .accept
    let modelID = models.current.modelID
    for context in contexts {
      statistics.recordOverloaded(reject: reject)
      guard let recorder else { continue }
      var row = entry(context)
      row.decision = verdict.rawValue
      row.modelID = modelID
      row.error = ReplyError.Code.overloaded.rawValue
      row.latencyMilliseconds = (monotonicSeconds() - context.receivedAt) * 1_000
      let statistics = self.statistics
      audits.enter()
      Task { [row, audits] in
        do {
          _ = try await recorder.record(row)
        } catch {
          statistics.recordAuditFailure()
        }
        audits.leave()
      }
    }
    return (verdict, modelID)
  }

  /// The audit row of a scored decision.
  func decisionRow(_ context: ScoreContext, decision: Decision, modelID: String, latency: Double)
    -> AuditEntry
  {
    var row = entry(context)
    row.tokens = decision.tokens
    row.score = decision.score
    row.threshold = decision.threshold
    row.decision = decision.verdict.rawValue
    row.featuresJSON = WireProtocol.featuresJSON(decision.features)
    row.modelID = modelID
    row.latencyMilliseconds = latency
    return row
  }

  /// Records a scored request (if a recorder is configured) and posts its reply.
  private func finish(_ context: ScoreContext, result: Result<Decision, DetectionError>, modelID: String) {
    let decision: Decision
    switch result {
    case .failure(let error):
      let reply = ReplyError(error)
      statistics.recordError(reply.code)
      post(
        connection: context.connection, sequence: context.sequence,
        bytes: WireProtocol.errorReply(id: context.idJSON, reply))
      return
    case .success(let value):
      decision = value
    }
    let decidedMilliseconds = (monotonicSeconds() - context.receivedAt) * 1_000
    guard let recorder else {
      reply(context, decision: decision, modelID: modelID, auditID: nil, audited: true)
      return
    }
    let row = decisionRow(context, decision: decision, modelID: modelID, latency: decidedMilliseconds)
    audits.enter()
    Task { [row, audits] in
      do {
        let auditID = try await recorder.record(row)
        self.reply(context, decision: decision, modelID: modelID, auditID: auditID, audited: true)
      } catch {
        self.statistics.recordAuditFailure()
        switch self.configuration.auditFailurePolicy {
        case .continue:
          self.reply(context, decision: decision, modelID: modelID, auditID: nil, audited: false)
        case .failClosed:
          self.statistics.recordError(.internal)
          self.post(
            connection: context.connection, sequence: context.sequence,
            bytes: WireProtocol.errorReply(id: context.idJSON, ReplyError(.internal, "decision not audited")))
        }
      }
      audits.leave()
    }
  }

  private func reply(
    _ context: ScoreContext, decision: Decision, modelID: String, auditID: Int64?, audited: Bool
  ) {
    let latency = (monotonicSeconds() - context.receivedAt) * 1_000
    statistics.recordDecision(reject: decision.verdict == .reject, latencyMilliseconds: latency)
    var rest = WireProtocol.decisionMembers(decision, modelID: modelID)
    rest.append(("latency_ms", JSONWriter.milliseconds(latency)))
    rest.append(("audit_id", auditID.map { "\($0)" } ?? "null"))
    if !audited { rest.append(("audited", "false")) }
    post(connection: context.connection, sequence: context.sequence, bytes: members(id: context.idJSON, rest))
    runShadow(context, served: decision, auditID: auditID)
  }

  /// Shadow mode: after the reply is posted, the candidate scores the same prompt on a
  /// low-priority queue; agreement is counted and its decision recorded with `shadowOf` pointing
  /// at the served decision's audit row.
  func runShadow(_ context: ScoreContext, served: Decision, auditID: Int64?) {
    guard let shadow else { return }
    let admitted = shadowPending.withLock { pending in
      guard pending < Self.shadowBacklog else { return false }
      pending += 1
      return true
    }
    guard admitted else {
      statistics.recordShadowSkipped()
      return
    }
    audits.enter()
    shadowQueue.async { [self] in
      let started = monotonicSeconds()
      let result = shadow.score([context.prompt], explain: false).first
      shadowPending.withLock { $0 -= 1 }
      guard case .success(let decision) = result else {
        statistics.recordShadow(agreed: nil)
        audits.leave()
        return
      }
      statistics.recordShadow(agreed: decision.verdict == served.verdict)
      guard let recorder else {
        audits.leave()
        return
      }
      var row = decisionRow(
        context, decision: decision, modelID: shadow.modelID, latency: (monotonicSeconds() - started) * 1_000)
      row.shadowOf = auditID
      Task { [row, audits, statistics] in
        do {
          _ = try await recorder.record(row)
        } catch {
          statistics.recordAuditFailure()
        }
        audits.leave()
      }
    }
  }

  /// Loads, validates and swaps in a new model on the reload queue.
  ///
  /// - Parameter completion: The new and previous model ids, or why the new model was refused.
  func reload(completion: @escaping @Sendable (Result<(String, String), ServingError>) -> Void) {
    guard let loader else {
      statistics.recordReload(succeeded: false)
      completion(
        .failure(ServingError(.reloadFailed, "reload is not configured (no model bundle to reload)")))
      return
    }
    reloadQueue.async { [models, statistics] in
      let current = models.current.modelID
      do {
        let candidate = try loader()
        let probe = candidate.score(["curvalid reload probe: is this model usable?"], explain: false)
        guard probe.count == 1, case .success(let decision) = probe[0], decision.score.isFinite,
          decision.threshold.isFinite
        else {
          throw ServingError(.reloadFailed, "the new model failed its probe prompt")
        }
        let previous = models.swap(candidate)
        statistics.recordReload(succeeded: true)
        completion(.success((candidate.modelID, previous.modelID)))
      } catch {
        statistics.recordReload(succeeded: false)
        completion(
          .failure(ServingError(.reloadFailed, "new model refused (\(error)); still serving \(current)")))
      }
    }
  }
}
