import Foundation
import Geometry
import LinearAlgebra
import TestSupport
import XCTest

final class LocalIntrinsicDimensionTests: XCTestCase {
  /// `[1, 2, 3, 4]`: `m = 2`, MoM `= 2 / (4 − 2) = 1`; MLE `= 4 / −(ln ¼ + ln ½ + ln ¾)`.
  func testKnownAnswers() throws {
    XCTAssertEqual(try LocalIntrinsicDimension.estimate([1, 2, 3, 4], estimator: .methodOfMoments), 1)
    let expected = Float(4 / -(log(0.25) + log(0.5) + log(0.75)))
    XCTAssertEqual(
      try LocalIntrinsicDimension.estimate([1, 2, 3, 4], estimator: .maximumLikelihood), expected,
      accuracy: 1e-6)
    // Scale invariance.
    XCTAssertEqual(
      try LocalIntrinsicDimension.estimate([0.01, 0.02, 0.03, 0.04], estimator: .methodOfMoments), 1,
      accuracy: 1e-5)
    // k = 2: m = r_1.
    XCTAssertEqual(try LocalIntrinsicDimension.estimate([1, 3], estimator: .methodOfMoments), 0.5)
    XCTAssertEqual(
      try LocalIntrinsicDimension.estimate([1, Float(M_E)], estimator: .maximumLikelihood), 2, accuracy: 1e-6)
  }

  /// Undefined estimates are 0: all distances equal, all zero, and (MLE) a zero distance.
  func testDegenerateDistancesGiveZero() throws {
    for estimator in LIDEstimator.allCases {
      XCTAssertEqual(try LocalIntrinsicDimension.estimate([2, 2, 2, 2], estimator: estimator), 0)
      XCTAssertEqual(try LocalIntrinsicDimension.estimate([0, 0, 0], estimator: estimator), 0)
    }
    XCTAssertEqual(try LocalIntrinsicDimension.estimate([0, 1, 2], estimator: .maximumLikelihood), 0)
    // The method of moments is defined with a zero distance: m = 0.5, 0.5 / 1.5.
    XCTAssertEqual(
      try LocalIntrinsicDimension.estimate([0, 1, 2], estimator: .methodOfMoments), 1 / 3, accuracy: 1e-6)
  }

  func testRefusesBadDistances() {
    assertThrows(.invalidNeighborCount) {
      _ = try LocalIntrinsicDimension.estimate([1], estimator: .methodOfMoments)
    }
    assertThrows(.invalidDistances) {
      _ = try LocalIntrinsicDimension.estimate([2, 1, 3], estimator: .methodOfMoments)
    }
    assertThrows(.invalidDistances) {
      _ = try LocalIntrinsicDimension.estimate([-1, 1, 3], estimator: .maximumLikelihood)
    }
    assertThrows(.nonFiniteValue) {
      _ = try LocalIntrinsicDimension.estimate([1, .nan, 3], estimator: .maximumLikelihood)
    }
  }

  func testRefusesBadQueries() throws {
    var rng = SeededGenerator(seed: 31)
    let reference = rng.matrix(rows: 10, columns: 4)
    assertThrows(.invalidNeighborCount) {
      _ = try LocalIntrinsicDimension.estimate(
        queries: reference, reference: reference, k: 10, excludingSelf: true)
    }
    assertThrows(.invalidNeighborCount) {
      _ = try LocalIntrinsicDimension.estimate(queries: reference, reference: reference, k: 11)
    }
    assertThrows(.invalidNeighborCount) {
      _ = try LocalIntrinsicDimension.estimate(queries: reference, reference: reference, k: 1)
    }
    assertThrows(.dimensionMismatch) {
      _ = try LocalIntrinsicDimension.estimate(
        queries: rng.matrix(rows: 2, columns: 5), reference: reference, k: 3)
    }
    assertThrows(.emptyReference) {
      _ = try LocalIntrinsicDimension.estimate(
        queries: Matrix(rows: 1, columns: 4), reference: Matrix(rows: 0, columns: 4), k: 2)
    }
    XCTAssertNoThrow(
      try LocalIntrinsicDimension.estimate(
        queries: reference, reference: reference, k: 9, excludingSelf: true))
  }

  /// The convenience and `LIDReference` agree with estimating from a brute-force neighbour search.
  func testQueriesMatchEstimatesFromNeighbourDistances() throws {
    var rng = SeededGenerator(seed: 32)
    let reference = rng.matrix(rows: 200, columns: 12)
    let lidReference = try LIDReference(reference)
    let found = try lidReference.neighbors.search(reference, k: 20, excludingSelf: true)
    for estimator in LIDEstimator.allCases {
      let estimates = try LocalIntrinsicDimension.estimate(
        queries: reference, reference: reference, k: 20, estimator: estimator, excludingSelf: true)
      XCTAssertEqual(estimates.count, 200)
      for q in [0, 57, 199] {
        let expected = try LocalIntrinsicDimension.estimate(found.distances(ofQuery: q), estimator: estimator)
        XCTAssertEqual(estimates[q], expected)
      }
      let excluded = try lidReference.lid(
        of: reference.rows(50..<60), k: 20, estimator: estimator, excludingIndices: Array(50..<60))
      XCTAssertEqual(excluded, Array(estimates[50..<60]))
    }
    // Outside queries keep their nearest neighbour (no exclusion by default).
    let outside = try lidReference.lid(of: reference.rows(0..<5), k: 20)
    XCTAssertEqual(outside.count, 5)
    XCTAssertTrue(outside.allSatisfy { $0 == 0 || $0.isFinite })
  }

  /// Uniform points of a `d`-cube, rotated into 128 dimensions: both estimators recover `d` within
  /// 20% (median and mean over queries, `k = 50`, each query excluded from its own neighbours).
  ///
  /// The reference is all 5,000 points; the queries are the 400 of them nearest the centre of the
  /// cube, where the ball holding 50 neighbours (radius ≈ 0.6 for `d = 10`) is least cut by faces.
  func testUniformCubeDimensionIsRecovered() throws {
    var rng = SeededGenerator(seed: 33)
    let (count, ambient, queryCount, k) = (5_000, 128, 400, 50)
    for dimension in [2, 5, 10] {
      let embedding = orthonormalRows(dimension, ambient, using: &rng)  // [d, 128]
      let cube = rng.matrix(rows: count, columns: dimension, range: 0...1)  // [5000, d]
      let points = BLAS.matmul(cube, embedding)  // [5000, 128]
      let reference = try LIDReference(points)

      var centreDistances = [Float](repeating: 0, count: count)
      for row in 0..<count {
        for c in 0..<dimension { centreDistances[row] += (cube[row, c] - 0.5) * (cube[row, c] - 0.5) }
      }
      let central = Array(
        (0..<count).sorted { (centreDistances[$0], $0) < (centreDistances[$1], $1) }.prefix(queryCount))
      var queries = Matrix(rows: queryCount, columns: ambient)
      for (i, row) in central.enumerated() {
        for c in 0..<ambient { queries[i, c] = points[row, c] }
      }

      let found = try reference.neighbors.search(queries, k: k, excludingIndices: central)
      XCTAssertFalse(zip(central, (0..<queryCount)).contains { found.indices(ofQuery: $1).contains($0) })
      for estimator in LIDEstimator.allCases {
        let estimates = LIDReference.estimates(found, estimator: estimator)
        let expected = Float(dimension)
        XCTAssertEqual(median(estimates), expected, accuracy: 0.2 * expected, "d=\(dimension) \(estimator)")
        XCTAssertEqual(mean(estimates), expected, accuracy: 0.2 * expected, "d=\(dimension) \(estimator)")
      }
    }
  }

  /// `rows` orthonormal rows of `columns` entries (Gram–Schmidt in Double): `[rows, columns]`.
  private func orthonormalRows(_ rows: Int, _ columns: Int, using rng: inout SeededGenerator) -> Matrix {
    var basis = [[Double]]()
    while basis.count < rows {
      var v = (0..<columns).map { _ in Double(rng.uniform()) }
      for u in basis {
        let projection = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
        for c in 0..<columns { v[c] -= projection * u[c] }
      }
      let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
      guard norm > 1e-6 else { continue }
      basis.append(v.map { $0 / norm })
    }
    return Matrix(basis.map { $0.map { Float($0) } })
  }

  private func mean(_ values: [Float]) -> Float {
    Float(values.reduce(0) { $0 + Double($1) } / Double(values.count))
  }

  private func median(_ values: [Float]) -> Float {
    let sorted = values.sorted()
    return sorted.count % 2 == 1
      ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
  }
}
