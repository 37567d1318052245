import Detection
import Foundation
import Hashing

/// The detection service: listeners, line protocol, micro-batching scheduler, audit hand-off,
/// admin operations and graceful shutdown.
///
/// Wiring (what `curvalid serve` does):
/// ```swift
/// let server = try Server(configuration: configuration, scorer: detector, recorder: auditLog,
///                         loader: { try loadDetector(bundlePath) })
/// try server.start()
/// ServerSignals.install(for: server)   // SIGTERM/SIGINT drain and stop, SIGHUP reloads
/// try server.waitUntilStopped()
/// ```
///
/// Threads: one I/O thread (`poll(2)` over all sockets), `configuration.workers` scoring threads,
/// audit `record` calls on Swift concurrency's global executor, and reloads on a serial queue.
public final class Server: Sendable {
  private enum Phase {
    case created, running, stopping, stopped
  }

  /// The configuration in effect.
  public let configuration: ServerConfiguration
  private let models: ModelHolder
  private let router: Router
  private let statistics = ServerStatistics()
  private let phase = Locked(Phase.created)
  private let loop = Locked<EventLoop?>(nil)
  private let loopFinished = DispatchSemaphore(value: 0)
  private let stopped = DispatchGroup()
  private let stopResult = Locked<ServingError?>(nil)

  /// Creates a server; nothing is bound until `start()`.
  ///
  /// - Parameters:
  ///   - configuration: Listeners, limits, policies (validated here).
  ///   - scorer: The model to serve first.
  ///   - recorder: Where decisions are recorded; `nil`: not audited (`audit_id` is `null`).
  ///   - loader: Loads a fresh model for `reload` (a bad bundle throws); `nil`: reload refused.
  ///   - shadow: A candidate model that scores every request after its reply (shadow mode).
  /// - Throws: `ServingError.invalidConfiguration`.
  public init(
    configuration: ServerConfiguration, scorer: any PromptScoring, recorder: (any DecisionRecorder)?,
    loader: (@Sendable () throws -> any PromptScoring)? = nil, shadow: (any PromptScoring)? = nil
  ) throws(ServingError) {
    try configuration.validate()
    self.configuration = configuration
    models = ModelHolder(scorer)
    let scheduler = ScoringScheduler(
      capacity: configuration.queueCapacity, workers: configuration.workers,
      maxBatchSize: configuration.maxBatchSize, batchWait: configuration.batchWaitMilliseconds / 1_000,
      models: models)
    router = Router(
      configuration: configuration, models: models, scheduler: scheduler, recorder: recorder, loader: loader,
      statistics: statistics, shadow: shadow)
    stopped.enter()
  }

  /// Binds the listeners and starts the I/O thread.
  ///
  /// - Throws: `ServingError` when a listener cannot be bound (nothing is left bound) or when the
  ///   server was already started.
  public func start() throws(ServingError) {
    let allowed = phase.withLock { phase in
      guard phase == .created else { return false }
      phase = .running
      return true
    }
    guard allowed else { throw ServingError(.invalidState, "the server was already started") }
    let eventLoop: EventLoop
    do {
      eventLoop = try EventLoop(configuration: configuration, router: router, statistics: statistics)
    } catch {
      phase.withLock { $0 = .stopped }
      router.scheduler.shutdown()
      stopped.leave()
      throw error
    }
    router.mailbox.withLock { $0 = eventLoop.mailbox }
    loop.withLock { $0 = eventLoop }
    let finished = loopFinished
    let thread = Thread {
      eventLoop.run()
      finished.signal()
    }
    thread.name = "curvalid-io"
    thread.start()
  }

  /// The bound TCP ports, in `configuration.tcpAddresses` order (the system's choice for port 0).
  public var tcpPorts: [Int] { loop.current?.boundTCPPorts ?? [] }

  /// The id of the model being served.
  public var modelID: String { models.current.modelID }

  /// Stops gracefully: stops accepting, answers every request already received (up to
  /// `drainTimeout`), stops the workers, waits for audit records, flushes the recorder.
  ///
  /// Safe to call more than once and from any thread; later calls wait for the first to finish.
  ///
  /// - Throws: `ServingError.audit` when the recorder's final flush fails.
  public func stop() throws(ServingError) {
    enum Action { case wait, finishUnstarted, drain }
    let action = phase.withLock { phase -> Action in
      switch phase {
      case .created:
        phase = .stopping
        return .finishUnstarted
      case .running:
        phase = .stopping
        return .drain
      case .stopping, .stopped:
        return .wait
      }
    }
    switch action {
    case .wait:
      try waitUntilStopped()
      return
    case .finishUnstarted:
      router.scheduler.shutdown()
    case .drain:
      if let eventLoop = loop.current {
        eventLoop.mailbox.post(.drain)
        loopFinished.wait()
      }
      router.scheduler.shutdown()
      router.waitForAudits(timeout: configuration.drainTimeout)
      do {
        try router.recorder?.flush()
      } catch {
        stopResult.withLock { $0 = ServingError(.audit, "flushing the audit log failed: \(error)") }
      }
    }
    phase.withLock { $0 = .stopped }
    stopped.leave()
    if let failure = stopResult.current { throw failure }
  }

  /// Blocks until `stop()` has finished.
  ///
  /// - Throws: The error `stop()` reported.
  public func waitUntilStopped() throws(ServingError) {
    stopped.wait()
    if let failure = stopResult.current { throw failure }
  }

  /// Loads a new model with the loader, validates it, and swaps it in (admin `reload`, SIGHUP).
  ///
  /// Runs on the reload queue; `completion` gets the new model id or the reason it was refused.
  public func reload(completion: @escaping @Sendable (Result<String, ServingError>) -> Void) {
    router.reload { result in completion(result.map(\.0)) }
  }
}
