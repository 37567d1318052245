import Foundation
import Geometry
import LinearAlgebra
import TestSupport
import XCTest

final class TextCurvatureTests: XCTestCase {
  /// Points on a circle of radius `R` around the origin, `α` apart: every pair turns by `θ = α`
  /// between vectors of norm `R`, so `κ = α / (2 / R) = α R / 2`.
  func testCircleMatchesClosedForm() {
    var rng = SeededGenerator(seed: 11)
    for (radius, step) in [(Float(3), Float(0.3)), (0.5, 1.1), (40, 0.01), (2, 3.0)] {
      // Embed the plane of the circle in 7 dimensions along two random orthonormal directions.
      let (u, v) = orthonormalPair(dimension: 7, using: &rng)
      let n = 25
      var x = Matrix(rows: n, columns: 7)
      for i in 0..<n {
        let angle = Double(step) * Double(i)
        for c in 0..<7 {
          x[i, c] = Float(Double(radius) * (cos(angle) * Double(u[c]) + sin(angle) * Double(v[c])))
        }
      }
      let expected = step * radius / 2
      let profile = TextCurvature.profile(x)
      XCTAssertEqual(profile.values.count, n - 1)
      XCTAssertEqual(profile.validCount, n - 1)
      XCTAssertTrue(
        allClose(profile.values, [Float](repeating: expected, count: n - 1), absolute: 1e-5, relative: 1e-4),
        "R=\(radius) α=\(step): \(profile.values.prefix(3)) vs \(expected)")
      XCTAssertEqual(TextCurvature.mean(x), expected, accuracy: 1e-4 * expected + 1e-6)
      let statistics = TextCurvature.statistics(x)
      XCTAssertEqual(statistics.count, n - 1)
      XCTAssertEqual(statistics.median, expected, accuracy: 1e-4 * expected + 1e-6)
      XCTAssertLessThan(statistics.standardDeviation, 1e-4 * expected + 1e-6)
    }
  }

  /// Collinear points in the same direction never turn: every `κ` is 0.
  func testStraightRayHasZeroCurvature() {
    let direction: [Float] = [1, 2, -2, 0, 4]
    let x = Matrix((1...12).map { t in direction.map { $0 * Float(t) } })
    let profile = TextCurvature.profile(x)
    XCTAssertEqual(profile.values, [Float](repeating: 0, count: 11))
    XCTAssertEqual(profile.valid, [Bool](repeating: true, count: 11))
    XCTAssertEqual(profile.mean, 0)
  }

  /// Opposite vectors turn by π (the cosine is clamped, never NaN).
  func testOppositeVectorsTurnByPi() {
    let x = Matrix([[3, 4], [-3, -4]])
    XCTAssertEqual(TextCurvature.mean(x), Float.pi / (2 / 5), accuracy: 1e-6)
  }

  /// A turn by a right angle between vectors of different norms: `κ = (π/2) / (1/2 + 1/4)`.
  func testRightAngleWithUnequalNorms() {
    let x = Matrix([[2, 0, 0], [0, 4, 0]])
    XCTAssertEqual(TextCurvature.mean(x), (Float.pi / 2) / 0.75, accuracy: 1e-6)
  }

  /// Pairs touching a zero vector are skipped, and the mean covers the valid pairs only.
  func testZeroNormRowsAreSkipped() {
    let x = Matrix([[1, 0], [0, 0], [0, 2], [2, 0], [0, 0]])
    let profile = TextCurvature.profile(x)
    XCTAssertEqual(profile.valid, [false, false, true, false])
    XCTAssertEqual(profile.values[0], 0)
    XCTAssertEqual(profile.values[1], 0)
    XCTAssertEqual(profile.values[3], 0)
    let expected = (Float.pi / 2) / (1 / 2 + 1 / 2)
    XCTAssertEqual(profile.values[2], expected, accuracy: 1e-6)
    XCTAssertEqual(profile.mean, expected, accuracy: 1e-6)
    XCTAssertEqual(profile.validValues.count, 1)
    XCTAssertEqual(profile.statistics.count, 1)
  }

  /// No valid pair (one row, no rows, all-zero rows, NaN rows) gives a mean of 0, never NaN.
  func testNoValidPairGivesZero() {
    XCTAssertEqual(TextCurvature.mean(Matrix([[1, 2, 3]])), 0)
    XCTAssertEqual(TextCurvature.profile(Matrix([[1, 2, 3]])).values, [])
    XCTAssertEqual(TextCurvature.mean(Matrix(rows: 0, columns: 4)), 0)
    XCTAssertEqual(TextCurvature.mean(Matrix(rows: 5, columns: 3)), 0)
    XCTAssertEqual(TextCurvature.mean(Matrix(rows: 3, columns: 0)), 0)
    let withNaN = Matrix([[1, 0], [Float.nan, 1], [0, 1]])
    XCTAssertEqual(TextCurvature.profile(withNaN).valid, [false, false])
    XCTAssertEqual(TextCurvature.mean(withNaN), 0)
    let empty = TextCurvature.statistics(Matrix([[1, 2]]))
    XCTAssertEqual(empty.count, 0)
    XCTAssertEqual(empty.vector, [Float](repeating: 0, count: 8))
  }

  /// The buffer entry point measures a slice of a batch exactly like a standalone matrix.
  func testBufferSliceMatchesMatrix() {
    var rng = SeededGenerator(seed: 3)
    let batch = rng.matrix(rows: 30, columns: 9)
    let sample = batch.rows(10..<20)
    let fromBuffer = batch.storage.withUnsafeBufferPointer { all in
      TextCurvature.profile(UnsafeBufferPointer(rebasing: all[(10 * 9)..<(20 * 9)]), rows: 10, columns: 9)
    }
    XCTAssertEqual(fromBuffer, TextCurvature.profile(sample))
  }

  /// Matches a direct Double implementation of the formula on random data.
  func testMatchesDirectFormulaOnRandomData() {
    var rng = SeededGenerator(seed: 5)
    let x = rng.matrix(rows: 17, columns: 13)
    var expected = [Float]()
    for i in 1..<x.rows {
      let a = x.row(i - 1).map(Double.init)
      let b = x.row(i).map(Double.init)
      let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
      let nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
      let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
      let theta = acos(min(max(dot / (na * nb), -1), 1))
      expected.append(Float(theta / (1 / na + 1 / nb)))
    }
    let profile = TextCurvature.profile(x)
    XCTAssertTrue(allClose(profile.values, expected, absolute: 1e-6, relative: 1e-5))
    XCTAssertEqual(
      profile.mean, Float(expected.map(Double.init).reduce(0, +) / Double(expected.count)), accuracy: 1e-5)
  }

  /// Type-7 quantiles and the population standard deviation on known values.
  func testStatisticsOnKnownValues() {
    let statistics = CurvatureStatistics([4, 1, 3, 2])
    XCTAssertEqual(statistics.count, 4)
    XCTAssertEqual(statistics.mean, 2.5)
    XCTAssertEqual(statistics.standardDeviation, Float(1.25).squareRoot(), accuracy: 1e-6)
    XCTAssertEqual(statistics.minimum, 1)
    XCTAssertEqual(statistics.maximum, 4)
    XCTAssertEqual(statistics.lowerQuartile, 1.75, accuracy: 1e-6)
    XCTAssertEqual(statistics.median, 2.5, accuracy: 1e-6)
    XCTAssertEqual(statistics.upperQuartile, 3.25, accuracy: 1e-6)
    let single = CurvatureStatistics([7])
    XCTAssertEqual(single.vector, [1, 7, 0, 7, 7, 7, 7, 7])
  }

  /// Two random orthonormal vectors of `dimension` entries (Gram–Schmidt in Double).
  private func orthonormalPair(dimension: Int, using rng: inout SeededGenerator) -> ([Float], [Float]) {
    let a = (0..<dimension).map { _ in Double(rng.uniform()) }
    var b = (0..<dimension).map { _ in Double(rng.uniform()) }
    let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
    let u = a.map { $0 / na }
    let projection = zip(u, b).reduce(0) { $0 + $1.0 * $1.1 }
    for c in 0..<dimension { b[c] -= projection * u[c] }
    let nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return (u.map { Float($0) }, b.map { Float($0 / nb) })
  }
}
