import Geometry
import LinearAlgebra
import TestSupport
import XCTest

final class NearestNeighborsTests: XCTestCase {
  /// The naive answer: every distance in `Float`, coordinates in order, sorted by (distance, index).
  private func bruteForce(
    _ queries: Matrix, _ reference: Matrix, k: Int, excludingSelf: Bool = false
  ) -> (distances: [Float], indices: [Int]) {
    var distances = [Float]()
    var indices = [Int]()
    for q in 0..<queries.rows {
      var candidates = [(Float, Int)]()
      for j in 0..<reference.rows where !(excludingSelf && j == q) {
        var squared: Float = 0
        for c in 0..<queries.columns {
          let difference = queries[q, c] - reference[j, c]
          squared += difference * difference
        }
        candidates.append((squared, j))
      }
      candidates.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
      for (squared, j) in candidates.prefix(k) {
        distances.append(squared.squareRoot())
        indices.append(j)
      }
    }
    return (distances, indices)
  }

  private func assertMatchesBruteForce(
    _ queries: Matrix, _ reference: Matrix, k: Int, excludingSelf: Bool = false,
    workspaceBytes: Int = NearestNeighbors.defaultWorkspaceBytes, _ label: String,
    file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let search = try NearestNeighbors(reference: reference)
    let found = try search.search(
      queries, k: k, excludingSelf: excludingSelf, workspaceBytes: workspaceBytes)
    let expected = bruteForce(queries, reference, k: k, excludingSelf: excludingSelf)
    XCTAssertEqual(found.k, k, label, file: file, line: line)
    XCTAssertEqual(found.count, queries.rows, label, file: file, line: line)
    XCTAssertEqual(found.distances.rows, queries.rows, label, file: file, line: line)
    XCTAssertEqual(found.distances.columns, k, label, file: file, line: line)
    XCTAssertEqual(found.indices, expected.indices, label, file: file, line: line)
    XCTAssertTrue(
      allClose(found.distances.storage, expected.distances, absolute: 1e-6, relative: 1e-6),
      "\(label): max difference \(maxAbsoluteDifference(found.distances.storage, expected.distances))",
      file: file, line: line)
  }

  func testMatchesBruteForceOnOddShapes() throws {
    var rng = SeededGenerator(seed: 21)
    for (queries, references, dimension, k) in [
      (1, 1, 1, 1), (7, 13, 3, 13), (37, 50, 17, 5), (100, 129, 33, 10), (5, 64, 130, 1), (3, 9, 0, 4),
    ] {
      let q = rng.matrix(rows: queries, columns: dimension)
      let r = rng.matrix(rows: references, columns: dimension)
      try assertMatchesBruteForce(q, r, k: k, "q=\(queries) r=\(references) d=\(dimension) k=\(k)")
    }
  }

  func testExcludingSelfOnTheReferenceSet() throws {
    var rng = SeededGenerator(seed: 22)
    for (references, dimension, k) in [(2, 3, 1), (31, 7, 30), (90, 19, 8)] {
      let r = rng.matrix(rows: references, columns: dimension)
      try assertMatchesBruteForce(r, r, k: k, excludingSelf: true, "self r=\(references) k=\(k)")
      // A prefix of the reference set as queries.
      try assertMatchesBruteForce(
        r.rows(0..<(references / 2 + 1)), r, k: k, excludingSelf: true, "prefix r=\(references)")
    }
  }

  /// Integer grid points with repeated rows: many exact ties (broken towards the smaller index) and
  /// duplicates at distance 0 that count as neighbours, even with self exclusion.
  func testTiesAndDuplicates() throws {
    var rng = SeededGenerator(seed: 23)
    var rows = [[Float]]()
    for _ in 0..<60 {
      rows.append((0..<3).map { _ in Float(Int(rng.uniform(0...2.999))) })
    }
    rows.append(rows[5])
    // Two copies of an off-grid point: each is the other's only neighbour at distance 0.
    rows.append([0.5, 1.5, 0.25])
    rows.append([0.5, 1.5, 0.25])
    let reference = Matrix(rows)
    try assertMatchesBruteForce(reference, reference, k: 12, "grid")
    try assertMatchesBruteForce(reference, reference, k: 62, excludingSelf: true, "grid self")

    let search = try NearestNeighbors(reference: reference)
    let found = try search.search(reference, k: 3, excludingSelf: true)
    XCTAssertEqual(found.indices(ofQuery: 61)[0], 62)
    XCTAssertEqual(found.distances(ofQuery: 61)[0], 0)
    XCTAssertEqual(found.indices(ofQuery: 62)[0], 61)
    XCTAssertEqual(found.distances(ofQuery: 62)[0], 0)
    XCTAssertFalse(found.indices(ofQuery: 62).contains(62))
    // Without exclusion a point finds itself first, then its copy.
    XCTAssertEqual(try search.search(reference.rows(61..<63), k: 2).indices, [61, 62, 61, 62])
  }

  /// Tiny workspaces force blocks of 1, 3 and 7 queries over a query count that is not a multiple.
  func testBlockBoundariesGiveTheSameAnswer() throws {
    var rng = SeededGenerator(seed: 24)
    let reference = rng.matrix(rows: 41, columns: 6)
    let queries = rng.matrix(rows: 23, columns: 6)
    let search = try NearestNeighbors(reference: reference)
    let whole = try search.search(queries, k: 9)
    for blockRows in [1, 3, 7, 22, 23, 24] {
      let bytes = blockRows * 41 * MemoryLayout<Float>.stride
      let blocked = try search.search(queries, k: 9, workspaceBytes: bytes)
      XCTAssertEqual(blocked, whole, "block of \(blockRows)")
      try assertMatchesBruteForce(queries, reference, k: 9, workspaceBytes: bytes, "block \(blockRows)")
    }
    // Even a workspace too small for one row still processes one query at a time.
    XCTAssertEqual(try search.search(queries, k: 9, workspaceBytes: 1), whole)
  }

  /// Points far from the origin and very close to each other: the GEMM identity alone would lose
  /// these distances to cancellation; the search still matches the direct computation.
  func testFarFromOriginAndClosePoints() throws {
    var rng = SeededGenerator(seed: 25)
    let base = (0..<16).map { _ in rng.uniform(500...1000) }
    var rows = [[Float]]()
    for _ in 0..<70 { rows.append(base.map { $0 + rng.uniform(-0.01...0.01) }) }
    let reference = Matrix(rows)
    try assertMatchesBruteForce(reference, reference, k: 10, excludingSelf: true, "far")
    let queries = Matrix((0..<9).map { _ in base.map { $0 + rng.uniform(-0.02...0.02) } })
    try assertMatchesBruteForce(queries, reference, k: 70, "far queries")
  }

  /// Results are identical across repeated runs and BLAS thread counts.
  func testDeterministicAcrossRunsAndThreadCounts() throws {
    var rng = SeededGenerator(seed: 26)
    let reference = rng.matrix(rows: 700, columns: 64)
    let queries = rng.matrix(rows: 150, columns: 64)
    let search = try NearestNeighbors(reference: reference)
    let saved = BLAS.threadCount
    defer { BLAS.threadCount = saved }
    BLAS.threadCount = 1
    let single = try search.search(queries, k: 16)
    XCTAssertEqual(try search.search(queries, k: 16), single)
    BLAS.threadCount = 2
    XCTAssertEqual(try search.search(queries, k: 16), single)
    XCTAssertEqual(try search.search(queries, k: 16, workspaceBytes: 4096), single)
  }

  func testEmptyQueriesGiveEmptyResults() throws {
    let search = try NearestNeighbors(reference: Matrix([[1, 2], [3, 4]]))
    let found = try search.search(Matrix(rows: 0, columns: 2), k: 2)
    XCTAssertEqual(found.count, 0)
    XCTAssertEqual(found.indices, [])
  }

  func testRefusesBadInput() throws {
    let reference = Matrix([[0, 0], [1, 0], [0, 1]])
    let search = try NearestNeighbors(reference: reference)
    let queries = Matrix([[0.5, 0.5]])
    assertThrows(.invalidNeighborCount) { _ = try search.search(queries, k: 4) }
    assertThrows(.invalidNeighborCount) { _ = try search.search(queries, k: 0) }
    assertThrows(.invalidNeighborCount) { _ = try search.search(reference, k: 3, excludingSelf: true) }
    XCTAssertNoThrow(try search.search(reference, k: 2, excludingSelf: true))
    XCTAssertNoThrow(try search.search(queries, k: 3))
    assertThrows(.dimensionMismatch) { _ = try search.search(Matrix([[1, 2, 3]]), k: 1) }
    assertThrows(.dimensionMismatch) {
      _ = try search.search(Matrix(rows: 4, columns: 2), k: 1, excludingSelf: true)
    }
    assertThrows(.dimensionMismatch) { _ = try search.search(queries, k: 1, excludingIndices: [3]) }
    assertThrows(.dimensionMismatch) { _ = try search.search(queries, k: 1, excludingIndices: [0, 1]) }
    assertThrows(.nonFiniteValue) { _ = try search.search(Matrix([[Float.nan, 0]]), k: 1) }
    assertThrows(.invalidArgument) { _ = try search.search(queries, k: 1, workspaceBytes: 0) }
    assertThrows(.emptyReference) { _ = try NearestNeighbors(reference: Matrix(rows: 0, columns: 2)) }
    assertThrows(.nonFiniteValue) { _ = try NearestNeighbors(reference: Matrix([[0, Float.infinity]])) }
  }
}

/// Asserts that `body` throws a `GeometryError` with `code`.
func assertThrows(
  _ code: GeometryError.Code, file: StaticString = #filePath, line: UInt = #line,
  _ body: () throws -> Void
) {
  do {
    try body()
    XCTFail("expected \(code), nothing thrown", file: file, line: line)
  } catch let error as GeometryError {
    XCTAssertEqual(error.code, code, error.description, file: file, line: line)
    XCTAssertFalse(error.message.isEmpty, file: file, line: line)
  } catch {
    XCTFail("expected GeometryError \(code), got \(error)", file: file, line: line)
  }
}
