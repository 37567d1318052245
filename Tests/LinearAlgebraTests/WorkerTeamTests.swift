import Dispatch
import Synchronization
import XCTest

@testable import LinearAlgebra

final class WorkerTeamTests: XCTestCase {
  func testEveryPartRunsOnceOnDistinctThreads() {
    let team = WorkerTeam(size: 3)
    defer { team.stop() }
    for round in 0..<200 {
      let counts = Mutex([Int](repeating: 0, count: 3))
      team.run { part in counts.withLock { $0[part] += 1 } }
      XCTAssertEqual(counts.withLock { $0 }, [1, 1, 1], "round \(round)")
    }
  }

  func testHelpersWakeAfterSleeping() {
    let team = WorkerTeam(size: 2)
    defer { team.stop() }
    // Longer than the spin period, so the helper has gone to sleep on the condition.
    usleep(UInt32(WorkerTeam.spinDuration / 1000) * 5)
    let parts = Mutex<[Int]>([])
    XCTAssertTrue(team.run { part in parts.withLock { $0.append(part) } })
    XCTAssertEqual(parts.withLock { $0.sorted() }, [0, 1])
  }

  func testNestedRunExecutesInlineInsteadOfDeadlocking() {
    let team = WorkerTeam(size: 2)
    defer { team.stop() }
    let inner = Mutex<[Int]>([])
    let outerParallel = team.run { _ in
      let parallel = team.run { part in inner.withLock { $0.append(part) } }
      XCTAssertFalse(parallel)
    }
    XCTAssertTrue(outerParallel)
    // Each of the two outer parts ran the whole inner job itself: parts 0 and 1, twice.
    XCTAssertEqual(inner.withLock { $0.sorted() }, [0, 0, 1, 1])
  }

  func testConcurrentCallersAllComplete() {
    let team = WorkerTeam(size: 2)
    defer { team.stop() }
    let total = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: 8) { _ in
      for _ in 0..<100 {
        team.run { _ in total.add(1, ordering: .relaxed) }
      }
    }
    XCTAssertEqual(total.load(ordering: .relaxed), 8 * 100 * 2)
  }

  func testSingleMemberTeamRunsOnCaller() {
    let team = WorkerTeam(size: 1)
    var parts: [Int] = []
    XCTAssertFalse(team.run { parts.append($0) })
    XCTAssertEqual(parts, [0])
  }
}
