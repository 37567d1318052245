import Dispatch
import Foundation
import Synchronization

/// A fixed team of threads that run one job at a time, all members together, with a wake-up in
/// microseconds.
///
/// The encoder alternates, about fifty times per prompt, between a matrix product and a short
/// element-wise pass. Handing each of those to a thread pool that sleeps between jobs (Dispatch,
/// or OpenBLAS's own server, which yields while idle and then competes with the element-wise
/// workers for the same two cores) costs tens of microseconds per hand-off. The team's helpers
/// instead spin on a generation counter for a short while after each job, so the next one starts
/// at once, and sleep on a condition variable only when no work has come for `spinDuration`.
///
/// One job runs at a time. A `run` that finds the team busy (a second caller, or a job that itself
/// calls `run`) executes its parts one after the other on the calling thread instead of waiting,
/// so nesting can never deadlock.
final class WorkerTeam: @unchecked Sendable {
  /// Members including the calling thread: the job's parts are `0..<size`.
  let size: Int

  /// How long an idle helper spins before it sleeps, in nanoseconds.
  static let spinDuration: UInt64 = 200_000

  private let generation = Atomic<Int>(0)
  private let pending = Atomic<Int>(0)
  private let busy = Atomic<Bool>(false)
  private let sleepers = Atomic<Int>(0)
  private let stopping = Atomic<Bool>(false)
  private let condition = NSCondition()
  // Written by the caller before it publishes a new generation (release) and read by helpers
  // after they observe it (acquire); valid until `pending` returns to zero.
  private var job: ((Int) -> Void)?

  /// Starts `size − 1` helper threads (none for `size ≤ 1`).
  init(size: Int) {
    self.size = max(1, size)
    for member in 1..<self.size {
      // The thread keeps the team alive until `stop` lets it return.
      let thread = Thread { self.serve(member: member) }
      thread.name = "curvalid-team-\(member)"
      thread.start()
    }
  }

  /// Whether a job is running now (a hint: it may change at once; `run` is correct either way).
  var isBusy: Bool { busy.load(ordering: .relaxed) }

  /// Waits for the running job, if any, then lets the helpers exit. Later `run` calls still work,
  /// on the calling thread alone.
  func stop() {
    while !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
      sched_yield()
    }
    stopping.store(true, ordering: .sequentiallyConsistent)
    generation.add(1, ordering: .sequentiallyConsistent)
    condition.lock()
    condition.broadcast()
    condition.unlock()
  }

  /// Runs `body(part)` for every `part` in `0..<size`, part 0 on the calling thread, and returns
  /// when all parts are done. Parts must touch disjoint memory.
  ///
  /// - Returns: Whether the team ran the job in parallel (`false`: it was busy or has one member,
  ///   and the calling thread ran every part itself, in order).
  @discardableResult
  func run(_ body: (Int) -> Void) -> Bool {
    guard size > 1,
      busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    else {
      for part in 0..<size { body(part) }
      return false
    }
    withoutActuallyEscaping(body) { escapable in
      job = escapable
      pending.store(size - 1, ordering: .relaxed)
      generation.add(1, ordering: .sequentiallyConsistent)
      if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
        condition.lock()
        condition.broadcast()
        condition.unlock()
      }
      escapable(0)
      var spins = 0
      while pending.load(ordering: .acquiring) > 0 {
        spins += 1
        // A helper that lost its core (another process) would otherwise be waited for by
        // spinning through a whole time slice.
        if spins & 1023 == 0 { sched_yield() }
      }
      job = nil
    }
    busy.store(false, ordering: .releasing)
    return true
  }

  /// A helper's loop. It starts from generation 0, not from the value it finds when its thread
  /// begins: a job published before the thread got going must still be run.
  private func serve(member: Int) {
    var seen = 0
    while true {
      var current = generation.load(ordering: .acquiring)
      if current == seen {
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.spinDuration
        var spins = 0
        while current == seen {
          spins += 1
          if spins & 255 == 0, DispatchTime.now().uptimeNanoseconds > deadline {
            current = sleep(until: seen)
            break
          }
          current = generation.load(ordering: .acquiring)
        }
      }
      seen = current
      if stopping.load(ordering: .acquiring) { return }
      job?(member)
      pending.subtract(1, ordering: .releasing)
    }
  }

  /// Blocks until the generation differs from `seen`; returns the new generation.
  private func sleep(until seen: Int) -> Int {
    condition.lock()
    sleepers.add(1, ordering: .sequentiallyConsistent)
    var current = generation.load(ordering: .sequentiallyConsistent)
    while current == seen {
      condition.wait()
      current = generation.load(ordering: .sequentiallyConsistent)
    }
    sleepers.subtract(1, ordering: .sequentiallyConsistent)
    condition.unlock()
    return current
  }
}
