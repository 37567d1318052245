import Foundation
import LinearAlgebra
import TestSupport
import XCTest

/// The vectorised `exp` and `erf` against the C library in double precision.
final class FastMathTests: XCTestCase {
  func testExpRelativeErrorBelow3e7AcrossTheSoftmaxRange() {
    var worst: Double = 0
    let inputs = stride(from: Float(-87), through: 88, by: 0.0137).map { $0 }
    for x in inputs {
      let exact = Foundation.exp(Double(x))
      worst = max(worst, abs(Double(FastMath.exp(x)) - exact) / exact)
    }
    XCTAssertLessThan(worst, 3e-7, "worst relative error \(worst)")
  }

  func testExpClampsOutsideTheFloatRange() {
    XCTAssertEqual(FastMath.exp(0), 1)
    XCTAssertEqual(FastMath.exp(1), Float(M_E), accuracy: 1e-6)
    for tiny in [-88, -1000, -Float.infinity] {
      let value = FastMath.exp(tiny)
      XCTAssertTrue(value > 0 && value < 2e-38, "\(tiny) → \(value)")
    }
    for huge in [89, 1000, Float.infinity] {
      let value = FastMath.exp(huge)
      XCTAssertTrue(value.isFinite && value > 1e38, "\(huge) → \(value)")
    }
  }

  func testErfAbsoluteErrorBelow5e7() {
    var worst: Double = 0
    let inputs = stride(from: Float(-9), through: 9, by: 0.00071).map { $0 }
    for x in inputs {
      worst = max(worst, abs(Double(FastMath.erf(x)) - Foundation.erf(Double(x))))
    }
    XCTAssertLessThan(worst, 5e-7, "worst absolute error \(worst)")
    XCTAssertEqual(FastMath.erf(0), 0, accuracy: 1e-9)
  }

  func testSoftmaxAndLayerNormTailsMatchScalarDefinitions() {
    var generator = SeededGenerator(seed: 3)
    for columns in [1, 7, 8, 13, 64, 67] {
      let rows = 3
      let input = (0..<(rows * columns)).map { _ in generator.uniform(-20...20) }
      var x = input
      x.withUnsafeMutableBufferPointer { VectorOps.softmaxRows($0, rows: rows, columns: columns) }
      for r in 0..<rows {
        let row = input[(r * columns)..<((r + 1) * columns)].map(Double.init)
        let m = row.max() ?? 0
        let total = row.map { Foundation.exp($0 - m) }.reduce(0, +)
        for c in 0..<columns {
          XCTAssertEqual(Double(x[r * columns + c]), Foundation.exp(row[c] - m) / total, accuracy: 1e-6)
        }
      }
    }
  }
}
