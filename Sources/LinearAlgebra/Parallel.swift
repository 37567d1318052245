/// Splitting element-wise work across the same team of `BLAS.threadCount` threads that runs the
/// split matrix products.
///
/// The work between the encoder's products (attention per head, layer norm) runs on the team's
/// members, one job after the other with the products, so no second pool competes for the cores.
public enum Parallel {
  /// Runs `body` over `0..<count` cut into at most `BLAS.threadCount` contiguous chunks, each at
  /// least `minimumChunk` long; `body` gets the chunk's range and the worker's index.
  ///
  /// Runs on the calling thread alone when one worker suffices. `body` must only touch disjoint
  /// parts of shared buffers for different ranges.
  ///
  /// - Parameters:
  ///   - count: The number of items.
  ///   - minimumChunk: The fewest items worth a thread of their own.
  ///   - body: The work for one chunk: `(range, worker)` with `worker < workerCount`.
  public static func forEachChunk(
    count: Int, minimumChunk: Int, _ body: (Range<Int>, Int) -> Void
  ) {
    forEachChunk(count: count, workers: workerCount(count: count, minimumChunk: minimumChunk), body)
  }

  /// Runs `body` over `0..<count` cut into `workers` contiguous chunks (see above), for callers
  /// that decided the worker count beforehand (`workerCount(count:minimumChunk:)`).
  public static func forEachChunk(count: Int, workers: Int, _ body: (Range<Int>, Int) -> Void) {
    if workers <= 1 {
      if count > 0 { body(0..<count, 0) }
      return
    }
    let team = BLAS.currentTeam
    if workers > team.size {
      preconditionFailure("\(workers) workers asked of a team of \(team.size)")
    }
    team.run { part in
      guard part < workers else { return }
      let start = count * part / workers
      let end = count * (part + 1) / workers
      body(start..<end, part)
    }
  }

  /// How many workers `forEachChunk` uses for `count` items.
  public static func workerCount(count: Int, minimumChunk: Int) -> Int {
    max(1, min(BLAS.threadCount, count / max(1, minimumChunk)))
  }
}
