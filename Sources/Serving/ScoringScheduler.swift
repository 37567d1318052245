import Detection
import Foundation

/// The model currently served; swapped atomically by `reload`.
///
/// A worker reads it once per batch, so requests already taken by a worker finish on the model
/// they started with.
final class ModelHolder: Sendable {
  private let model: Locked<any PromptScoring>

  /// Holds `initial`.
  init(_ initial: any PromptScoring) { model = Locked(initial) }

  /// The model to use for the next batch.
  var current: any PromptScoring { model.current }

  /// Replaces the model.
  ///
  /// - Returns: The model it replaced.
  @discardableResult
  func swap(_ replacement: any PromptScoring) -> any PromptScoring {
    model.withLock { held in
      let previous = held
      held = replacement
      return previous
    }
  }
}

/// A bounded queue of prompts and the worker threads that score them in micro-batches.
///
/// Each worker takes the oldest waiting request; if fewer than `maxBatchSize` are waiting it waits
/// up to `batchWait` for more, then scores the batch with one `score` call per `explain` setting.
/// `submit` never blocks: a full queue returns `false` and the caller applies the overload policy.
final class ScoringScheduler: Sendable {
  /// One request waiting to be scored.
  struct Job: Sendable {
    /// The prompt text.
    let prompt: String
    /// Whether an explanation was asked for.
    let explain: Bool
    /// Called on the worker thread with the outcome and the id of the model that produced it.
    let complete: @Sendable (Result<Decision, DetectionError>, String) -> Void
  }

  private struct State {
    var queue: [Job] = []
    var stopping = false
  }

  private let condition = NSCondition()
  private nonisolated(unsafe) var state = State()
  private let capacity: Int
  private let maxBatchSize: Int
  private let batchWait: Double
  private let models: ModelHolder
  private let finished = DispatchGroup()

  /// Creates the scheduler and starts `workers` threads.
  ///
  /// - Parameters:
  ///   - capacity: Waiting requests at most.
  ///   - workers: Scoring threads.
  ///   - maxBatchSize: Prompts per `score` call at most.
  ///   - batchWait: Seconds a worker waits to fill a batch.
  ///   - models: Where the current model is read from.
  init(capacity: Int, workers: Int, maxBatchSize: Int, batchWait: Double, models: ModelHolder) {
    self.capacity = capacity
    self.maxBatchSize = maxBatchSize
    self.batchWait = batchWait
    self.models = models
    for index in 0..<workers {
      finished.enter()
      let thread = Thread { [self] in
        self.work()
        self.finished.leave()
      }
      thread.name = "curvalid-score-\(index)"
      thread.start()
    }
  }

  /// Requests waiting for a worker.
  var depth: Int {
    condition.lock()
    defer { condition.unlock() }
    return state.queue.count
  }

  /// Queues `job`.
  ///
  /// - Returns: `false` when the queue is full or the scheduler is stopping (the job is dropped).
  func submit(_ job: Job) -> Bool { submit([job]) }

  /// Queues all of `jobs` (the messages of one request), or none of them.
  ///
  /// - Returns: `false` when they do not all fit in the queue or the scheduler is stopping (the
  ///   jobs are dropped).
  func submit(_ jobs: [Job]) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    guard !state.stopping, state.queue.count + jobs.count <= capacity else { return false }
    state.queue.append(contentsOf: jobs)
    if jobs.count == 1 { condition.signal() } else { condition.broadcast() }
    return true
  }

  /// Lets the workers finish what is queued, then stops them; returns when they have exited.
  func shutdown() {
    condition.lock()
    state.stopping = true
    condition.broadcast()
    condition.unlock()
    finished.wait()
  }

  private func nextBatch() -> [Job]? {
    condition.lock()
    defer { condition.unlock() }
    while true {
      while state.queue.isEmpty && !state.stopping { condition.wait() }
      if state.queue.isEmpty { return nil }
      if state.queue.count < maxBatchSize && batchWait > 0 && !state.stopping {
        let deadline = Date(timeIntervalSinceNow: batchWait)
        while state.queue.count < maxBatchSize && !state.stopping {
          if !condition.wait(until: deadline) { break }
        }
        // Another worker may have taken everything meanwhile.
        if state.queue.isEmpty { continue }
      }
      let count = min(state.queue.count, maxBatchSize)
      let batch = Array(state.queue.prefix(count))
      state.queue.removeFirst(count)
      return batch
    }
  }

  private func work() {
    while let batch = nextBatch() {
      let model = models.current
      let modelID = model.modelID
      for explain in [false, true] {
        let group = batch.filter { $0.explain == explain }
        guard !group.isEmpty else { continue }
        var results = model.score(group.map(\.prompt), explain: explain)
        if results.count != group.count {
          let error = DetectionError(
            .internalError, "the scorer returned \(results.count) results for \(group.count) prompts")
          results = Array(repeating: .failure(error), count: group.count)
        }
        for (job, result) in zip(group, results) { job.complete(result, modelID) }
      }
    }
  }
}
