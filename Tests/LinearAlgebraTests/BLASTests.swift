import LinearAlgebra
import TestSupport
import XCTest

final class BLASTests: XCTestCase {
  /// The naive triple loop every GEMM is checked against: `op(A)·op(B)`.
  private func naiveProduct(_ a: Matrix, _ b: Matrix, transposeA: Bool, transposeB: Bool) -> Matrix {
    let opA = transposeA ? a.transposed() : a
    let opB = transposeB ? b.transposed() : b
    var c = Matrix(rows: opA.rows, columns: opB.columns)
    for i in 0..<opA.rows {
      for j in 0..<opB.columns {
        var sum: Double = 0
        for p in 0..<opA.columns { sum += Double(opA[i, p]) * Double(opB[p, j]) }
        c[i, j] = Float(sum)
      }
    }
    return c
  }

  func testMatmulMatchesNaiveLoopsOnOddShapes() {
    var rng = SeededGenerator(seed: 7)
    for (m, k, n) in [(1, 1, 1), (3, 5, 7), (17, 33, 9), (64, 31, 65), (2, 129, 3)] {
      for transposeA in [false, true] {
        for transposeB in [false, true] {
          let a = transposeA ? rng.matrix(rows: k, columns: m) : rng.matrix(rows: m, columns: k)
          let b = transposeB ? rng.matrix(rows: n, columns: k) : rng.matrix(rows: k, columns: n)
          let fast = BLAS.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
          let slow = naiveProduct(a, b, transposeA: transposeA, transposeB: transposeB)
          XCTAssertEqual(fast.rows, m)
          XCTAssertEqual(fast.columns, n)
          XCTAssertTrue(
            allClose(fast.storage, slow.storage, absolute: 1e-4, relative: 1e-4),
            "m=\(m) k=\(k) n=\(n) tA=\(transposeA) tB=\(transposeB)")
        }
      }
    }
  }

  func testStridedGemmWritesIntoSubmatrix() {
    // Multiply the middle 2 columns of A (stride 4) and write into columns 1...2 of C (stride 5).
    var rng = SeededGenerator(seed: 3)
    let a = rng.matrix(rows: 3, columns: 4)
    let b = rng.matrix(rows: 2, columns: 2)
    var c = Matrix(rows: 3, columns: 5, repeating: 9)
    a.storage.withUnsafeBufferPointer { pa in
      b.storage.withUnsafeBufferPointer { pb in
        c.storage.withUnsafeMutableBufferPointer { pc in
          BLAS.gemm(
            m: 3, n: 2, k: 2, a: pa.firstAddress + 1, lda: 4, b: pb.firstAddress, ldb: 2,
            c: pc.firstAddress + 1, ldc: 5)
        }
      }
    }
    for i in 0..<3 {
      XCTAssertEqual(c[i, 0], 9)
      XCTAssertEqual(c[i, 3], 9)
      for j in 0..<2 {
        let expected = a[i, 1] * b[0, j] + a[i, 2] * b[1, j]
        XCTAssertEqual(c[i, 1 + j], expected, accuracy: 1e-5)
      }
    }
  }

  func testSplitProductsMatchNaiveLoops() {
    // Large enough to be split across the team: by columns (n ≥ 64), by rows (narrow n), with
    // and without transposed operands, with beta = 1 accumulating into C.
    let saved = BLAS.threadCount
    defer { BLAS.threadCount = saved }
    var rng = SeededGenerator(seed: 11)
    for threads in [2, 3] {
      BLAS.threadCount = threads
      for (m, k, n) in [(40, 100, 300), (37, 300, 101), (400, 200, 16), (4, 700, 400)] {
        for transposeA in [false, true] {
          for transposeB in [false, true] {
            let a = transposeA ? rng.matrix(rows: k, columns: m) : rng.matrix(rows: m, columns: k)
            let b = transposeB ? rng.matrix(rows: n, columns: k) : rng.matrix(rows: k, columns: n)
            let start = rng.matrix(rows: m, columns: n)
            var c = start
            a.storage.withUnsafeBufferPointer { pa in
              b.storage.withUnsafeBufferPointer { pb in
                c.storage.withUnsafeMutableBufferPointer { pc in
                  BLAS.gemm(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5,
                    a: pa.firstAddress, lda: a.columns, b: pb.firstAddress, ldb: b.columns, beta: 1,
                    c: pc.firstAddress, ldc: n)
                }
              }
            }
            let product = naiveProduct(a, b, transposeA: transposeA, transposeB: transposeB)
            let expected = zip(product.storage, start.storage).map { 0.5 * $0 + $1 }
            XCTAssertTrue(
              allClose(c.storage, expected, absolute: 1e-3, relative: 1e-4),
              "threads=\(threads) m=\(m) k=\(k) n=\(n) tA=\(transposeA) tB=\(transposeB)")
          }
        }
      }
    }
  }

  func testMatrixVectorProductMatchesLoops() {
    let saved = BLAS.threadCount
    defer { BLAS.threadCount = saved }
    var rng = SeededGenerator(seed: 13)
    for threads in [1, 2, 3] {
      BLAS.threadCount = threads
      // Small (one thread) and large enough to split the rows; a row stride wider than n.
      for (m, n, lda) in [(1, 1, 1), (5, 3, 4), (6544, 128, 128), (3000, 100, 120)] {
        let a = rng.matrix(rows: m, columns: lda)
        let x = rng.matrix(rows: 1, columns: n).storage
        var y = [Float](repeating: .nan, count: m)
        a.storage.withUnsafeBufferPointer { pa in
          x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
              BLAS.gemv(m: m, n: n, a: pa.firstAddress, lda: lda, x: px.firstAddress, y: py.firstAddress)
            }
          }
        }
        let expected = (0..<m).map { i in
          Float((0..<n).reduce(0.0) { $0 + Double(a[i, $1]) * Double(x[$1]) })
        }
        XCTAssertTrue(
          allClose(y, expected, absolute: 1e-4, relative: 1e-4), "threads=\(threads) m=\(m) n=\(n)")
      }
    }
  }

  func testThreadCountIsSettable() {
    let before = BLAS.threadCount
    BLAS.threadCount = 1
    XCTAssertEqual(BLAS.threadCount, 1)
    BLAS.threadCount = 3
    XCTAssertEqual(BLAS.threadCount, 3)
    BLAS.threadCount = before
  }
}
