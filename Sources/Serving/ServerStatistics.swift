import Foundation

/// Counters and a latency window for `{"op":"stats"}`; safe to update from any thread.
final class ServerStatistics: Sendable {
  /// A consistent copy of the counters.
  struct Snapshot: Sendable {
    var accepted = 0
    var rejected = 0
    var overloadedAccepted = 0
    var overloadedRejected = 0
    var errors: [String: Int] = [:]
    var auditFailures = 0
    var connectionsAccepted = 0
    var connectionsRefused = 0
    var connectionsOpen = 0
    var reloads = 0
    var reloadFailures = 0
    var shadowCompared = 0
    var shadowAgreed = 0
    var shadowSkipped = 0
    var shadowFailed = 0
    /// The most recent latencies (milliseconds), oldest first.
    var window: [Double] = []
  }

  private struct State {
    var snapshot = Snapshot()
    var ring: [Double] = []
    var ringNext = 0
  }

  /// How many recent latencies the percentiles cover.
  static let windowSize = 4_096
  private let state = Locked(State())
  private let started = monotonicSeconds()

  /// Seconds since the server was created.
  var uptime: Double { monotonicSeconds() - started }

  /// Counts a decision answered from the model.
  func recordDecision(reject: Bool, latencyMilliseconds: Double) {
    state.withLock { state in
      if reject { state.snapshot.rejected += 1 } else { state.snapshot.accepted += 1 }
      if state.ring.count < Self.windowSize {
        state.ring.append(latencyMilliseconds)
      } else {
        state.ring[state.ringNext] = latencyMilliseconds
      }
      state.ringNext = (state.ringNext + 1) % Self.windowSize
    }
  }

  /// Counts a decision made by the overload policy.
  func recordOverloaded(reject: Bool) {
    state.withLock {
      if reject { $0.snapshot.overloadedRejected += 1 } else { $0.snapshot.overloadedAccepted += 1 }
    }
  }

  /// Counts an error reply by code.
  func recordError(_ code: ReplyError.Code) {
    state.withLock { $0.snapshot.errors[code.rawValue, default: 0] += 1 }
  }

  /// Counts a failed `record` call.
  /// Counts one shadow comparison: `agreed` nil means the shadow model failed on the prompt.
  func recordShadow(agreed: Bool?) {
    state.withLock { state in
      guard let agreed else {
        state.snapshot.shadowFailed += 1
        return
      }
      state.snapshot.shadowCompared += 1
      if agreed { state.snapshot.shadowAgreed += 1 }
    }
  }

  /// Counts a request the shadow model skipped because its queue was full.
  func recordShadowSkipped() { state.withLock { $0.snapshot.shadowSkipped += 1 } }

  func recordAuditFailure() { state.withLock { $0.snapshot.auditFailures += 1 } }

  /// Counts a reload attempt.
  func recordReload(succeeded: Bool) {
    state.withLock { if succeeded { $0.snapshot.reloads += 1 } else { $0.snapshot.reloadFailures += 1 } }
  }

  /// Counts an accepted (`open: +1`), closed (`-1`) or refused connection.
  func recordConnection(opened: Bool?) {
    state.withLock {
      switch opened {
      case true?:
        $0.snapshot.connectionsAccepted += 1
        $0.snapshot.connectionsOpen += 1
      case false?: $0.snapshot.connectionsOpen -= 1
      case nil: $0.snapshot.connectionsRefused += 1
      }
    }
  }

  /// A copy of the counters and the latency window.
  func snapshot() -> Snapshot {
    state.withLock { state in
      var copy = state.snapshot
      if state.ring.count < Self.windowSize {
        copy.window = state.ring
      } else {
        copy.window = Array(state.ring[state.ringNext...] + state.ring[..<state.ringNext])
      }
      return copy
    }
  }
}

/// The values shown by `stats`, rendered as JSON members or Prometheus text.
struct StatisticsReport {
  let snapshot: ServerStatistics.Snapshot
  let uptime: Double
  let queueDepth: Int
  let queueCapacity: Int
  let modelID: String
  let version: String
  /// The shadow model, when one is configured.
  var shadowModelID: String? = nil

  /// Fraction of shadow comparisons where both models decided the same (`nil` before the first).
  var agreementRate: Double? {
    snapshot.shadowCompared == 0 ? nil : Double(snapshot.shadowAgreed) / Double(snapshot.shadowCompared)
  }

  /// The `q`-quantile (nearest rank) of the latency window, or `nil` when empty.
  func percentile(_ q: Double, of sorted: [Double]) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let rank = Int((q * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
  }

  private var decided: Int { snapshot.accepted + snapshot.rejected }

  /// Fraction of model decisions that were `reject` (0 when none).
  var rejectRate: Double { decided == 0 ? 0 : Double(snapshot.rejected) / Double(decided) }

  /// The JSON members of the `stats` reply.
  func jsonMembers() -> [(String, String)] {
    let sorted = snapshot.window.sorted()
    func quantile(_ q: Double) -> String { percentile(q, of: sorted).map(JSONWriter.milliseconds) ?? "null" }
    let errors = JSONWriter.object(snapshot.errors.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") })
    return [
      ("model", JSONWriter.string(modelID)),
      ("version", JSONWriter.string(version)),
      ("uptime_s", JSONWriter.number((uptime * 1_000).rounded() / 1_000)),
      (
        "decisions",
        JSONWriter.object([
          ("accept", "\(snapshot.accepted)"), ("reject", "\(snapshot.rejected)"),
          ("overloaded_accept", "\(snapshot.overloadedAccepted)"),
          ("overloaded_reject", "\(snapshot.overloadedRejected)"),
        ])
      ),
      ("reject_rate", JSONWriter.number(rejectRate)),
      ("decisions_per_s", JSONWriter.number(uptime > 0 ? Double(decided) / uptime : 0)),
      ("errors", errors),
      ("audit_failures", "\(snapshot.auditFailures)"),
      (
        "shadow",
        shadowModelID.map { shadow in
          JSONWriter.object([
            ("model", JSONWriter.string(shadow)), ("compared", "\(snapshot.shadowCompared)"),
            ("agreed", "\(snapshot.shadowAgreed)"),
            ("agreement_rate", agreementRate.map(JSONWriter.number) ?? "null"),
            ("skipped", "\(snapshot.shadowSkipped)"), ("failed", "\(snapshot.shadowFailed)"),
          ])
        } ?? "null"
      ),
      (
        "latency_ms",
        JSONWriter.object([
          ("window", "\(sorted.count)"), ("p50", quantile(0.5)), ("p90", quantile(0.9)),
          ("p99", quantile(0.99)),
        ])
      ),
      ("queue_depth", "\(queueDepth)"),
      ("queue_capacity", "\(queueCapacity)"),
      (
        "connections",
        JSONWriter.object([
          ("open", "\(snapshot.connectionsOpen)"), ("accepted", "\(snapshot.connectionsAccepted)"),
          ("refused", "\(snapshot.connectionsRefused)"),
        ])
      ),
      (
        "reloads",
        JSONWriter.object([("ok", "\(snapshot.reloads)"), ("failed", "\(snapshot.reloadFailures)")])
      ),
    ]
  }

  /// `text` escaped for a Prometheus label value.
  static func label(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
      .replacingOccurrences(of: "\n", with: "\\n")
  }

  /// The Prometheus text exposition (version 0.0.4) of the same values.
  func prometheusText() -> String {
    let sorted = snapshot.window.sorted()
    var lines: [String] = []
    func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)])
    {
      lines.append("# HELP curvalid_\(name) \(help)")
      lines.append("# TYPE curvalid_\(name) \(type)")
      for sample in samples {
        lines.append("curvalid_\(name)\(sample.labels.isEmpty ? "" : "{\(sample.labels)}") \(sample.value)")
      }
    }
    metric(
      "info", "gauge", "Model and version being served.",
      [("model=\"\(Self.label(modelID))\",version=\"\(Self.label(version))\"", "1")])
    metric("uptime_seconds", "gauge", "Seconds since the service started.", [("", "\(uptime)")])
    metric(
      "decisions_total", "counter", "Decisions by outcome; overloaded=true when made by the overload policy.",
      [
        ("decision=\"accept\",overloaded=\"false\"", "\(snapshot.accepted)"),
        ("decision=\"reject\",overloaded=\"false\"", "\(snapshot.rejected)"),
        ("decision=\"accept\",overloaded=\"true\"", "\(snapshot.overloadedAccepted)"),
        ("decision=\"reject\",overloaded=\"true\"", "\(snapshot.overloadedRejected)"),
      ])
    metric("reject_ratio", "gauge", "Fraction of model decisions that were reject.", [("", "\(rejectRate)")])
    metric(
      "errors_total", "counter", "Error replies by code.",
      snapshot.errors.sorted { $0.key < $1.key }.map { ("code=\"\($0.key)\"", "\($0.value)") })
    metric(
      "audit_failures_total", "counter", "Decisions the recorder failed to record.",
      [("", "\(snapshot.auditFailures)")])
    let quantiles = [0.5, 0.9, 0.99].compactMap { q in
      percentile(q, of: sorted).map { ("quantile=\"\(q)\"", "\($0 / 1_000)") }
    }
    metric(
      "request_latency_seconds", "summary",
      "Receipt-to-reply latency over the last \(ServerStatistics.windowSize) decisions.",
      quantiles)
    lines.append("curvalid_request_latency_seconds_count \(sorted.count)")
    lines.append("curvalid_request_latency_seconds_sum \(sorted.reduce(0, +) / 1_000)")
    metric("queue_depth", "gauge", "Requests waiting for a scoring worker.", [("", "\(queueDepth)")])
    metric(
      "queue_capacity", "gauge", "Queue capacity before the overload policy answers.",
      [("", "\(queueCapacity)")])
    metric("connections_open", "gauge", "Open client connections.", [("", "\(snapshot.connectionsOpen)")])
    metric(
      "connections_accepted_total", "counter", "Accepted connections.",
      [("", "\(snapshot.connectionsAccepted)")])
    metric(
      "connections_refused_total", "counter", "Connections refused at the limit.",
      [("", "\(snapshot.connectionsRefused)")])
    metric(
      "reloads_total", "counter", "Model reloads by result.",
      [("result=\"ok\"", "\(snapshot.reloads)"), ("result=\"failed\"", "\(snapshot.reloadFailures)")])
    if let shadowModelID {
      metric(
        "shadow_comparisons_total", "counter", "Shadow-model decisions by agreement with the served model.",
        [
          ("model=\"\(Self.label(shadowModelID))\",agreed=\"true\"", "\(snapshot.shadowAgreed)"),
          (
            "model=\"\(Self.label(shadowModelID))\",agreed=\"false\"",
            "\(snapshot.shadowCompared - snapshot.shadowAgreed)"
          ),
        ])
      metric(
        "shadow_skipped_total", "counter", "Requests the shadow model skipped (its queue was full).",
        [("", "\(snapshot.shadowSkipped)")])
    }
    return lines.joined(separator: "\n") + "\n"
  }
}
