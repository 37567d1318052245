import Foundation
import LinearAlgebra
import TestSupport
import XCTest

final class VectorOpsTests: XCTestCase {
  func testSoftmaxRowsSumToOneAndMatchDefinition() {
    var x: [Float] = [1, 2, 3, -1000, 0, 1000]
    x.withUnsafeMutableBufferPointer { VectorOps.softmaxRows($0, rows: 2, columns: 3) }
    let e = [exp(1.0), exp(2.0), exp(3.0)]
    let s = e.reduce(0, +)
    XCTAssertTrue(allClose(x[0..<3], e.map { Float($0 / s) }, absolute: 1e-6))
    XCTAssertTrue(allClose(x[3..<6], [0, 0, 1], absolute: 1e-6))
  }

  func testLayerNormMatchesDefinition() {
    var rng = SeededGenerator(seed: 11)
    let columns = 37
    let original = (0..<(3 * columns)).map { _ in rng.uniform(-4...4) }
    let gamma = (0..<columns).map { _ in rng.uniform(0.5...1.5) }
    let beta = (0..<columns).map { _ in rng.uniform() }
    var x = original
    x.withUnsafeMutableBufferPointer { px in
      gamma.withUnsafeBufferPointer { pg in
        beta.withUnsafeBufferPointer { pb in
          VectorOps.layerNormRows(px, rows: 3, columns: columns, gamma: pg, beta: pb, epsilon: 1e-12)
        }
      }
    }
    for r in 0..<3 {
      let row = original[(r * columns)..<((r + 1) * columns)].map(Double.init)
      let mean = row.reduce(0, +) / Double(columns)
      let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(columns)
      let expected = row.enumerated().map { c, v in
        Float((v - mean) / (variance + 1e-12).squareRoot()) * gamma[c] + beta[c]
      }
      XCTAssertTrue(allClose(x[(r * columns)..<((r + 1) * columns)], expected, absolute: 1e-5))
    }
  }

  func testGeluMatchesErfDefinition() {
    let inputs: [Float] = [-6, -3, -1, -0.5, 0, 0.25, 1, 2.5, 6, 12]
    var x = inputs
    x.withUnsafeMutableBufferPointer { VectorOps.gelu($0) }
    let expected = inputs.map { v in Float(0.5 * Double(v) * (1 + erf(Double(v) / 2.0.squareRoot()))) }
    XCTAssertTrue(allClose(x, expected, absolute: 1e-6, relative: 1e-6))
  }

  func testReluAndBias() {
    var x: [Float] = [-1, 2, 3, -4]
    let bias: [Float] = [1, -1]
    x.withUnsafeMutableBufferPointer { px in
      bias.withUnsafeBufferPointer { VectorOps.addRowVector(px, rows: 2, columns: 2, $0) }
      VectorOps.relu(px)
    }
    XCTAssertEqual(x, [0, 1, 4, 0])
  }
}
