import LinearAlgebra
import TestSupport
import XCTest

final class AffineTests: XCTestCase {
  /// `activation(residual + bias + input · weight)` by plain loops in Double.
  private func reference(
    input: Matrix, weight: Matrix, bias: [Float], residual: Matrix?, gelu: Bool
  ) -> [Float] {
    var out: [Float] = []
    for r in 0..<input.rows {
      for j in 0..<weight.columns {
        var sum = Double(bias[j]) + Double(residual?[r, j] ?? 0)
        for p in 0..<input.columns { sum += Double(input[r, p]) * Double(weight[p, j]) }
        out.append(gelu ? Float(0.5 * sum * (1 + erf(sum / 2.0.squareRoot()))) : Float(sum))
      }
    }
    return out
  }

  func testSplitAndSerialLayersMatchLoops() {
    let saved = BLAS.threadCount
    defer { BLAS.threadCount = saved }
    var rng = SeededGenerator(seed: 5)
    for threads in [1, 2, 3] {
      BLAS.threadCount = threads
      // Shapes below and above the split threshold, widths that are and are not multiples of 16.
      for (rows, k, n) in [
        (1, 3, 5), (50, 128, 200), (33, 200, 150), (9, 512, 264), (64, 40, 20), (301, 100, 40),
      ] {
        for useResidual in [false, true] {
          for gelu in [false, true] {
            let input = rng.matrix(rows: rows, columns: k)
            let weight = rng.matrix(rows: k, columns: n)
            let bias = rng.matrix(rows: 1, columns: n).storage
            let residual = useResidual ? rng.matrix(rows: rows, columns: n) : nil
            var output = [Float](repeating: .nan, count: rows * n)
            input.storage.withUnsafeBufferPointer { x in
              weight.storage.withUnsafeBufferPointer { w in
                bias.withUnsafeBufferPointer { b in
                  output.withUnsafeMutableBufferPointer { o in
                    let target = o.firstAddress
                    func apply(_ res: UnsafePointer<Float>?) {
                      Affine.apply(
                        rows: rows, inputWidth: k, outputWidth: n, input: x.firstAddress,
                        weight: w.firstAddress, bias: b.firstAddress, residual: res,
                        activation: gelu ? .gelu : .identity, output: target)
                    }
                    if let residual {
                      residual.storage.withUnsafeBufferPointer { apply($0.firstAddress) }
                    } else {
                      apply(nil)
                    }
                  }
                }
              }
            }
            let expected = reference(input: input, weight: weight, bias: bias, residual: residual, gelu: gelu)
            XCTAssertTrue(
              allClose(output, expected, absolute: 2e-3, relative: 1e-4),
              "threads=\(threads) rows=\(rows) k=\(k) n=\(n) residual=\(useResidual) gelu=\(gelu)")
          }
        }
      }
    }
  }
}
