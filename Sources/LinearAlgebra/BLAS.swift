import COpenBLAS

/// The one door to OpenBLAS: matrix products and the library's thread setting.
///
/// Only this file calls into `COpenBLAS`. All matrices are row-major.
public enum BLAS {
  /// The number of threads OpenBLAS uses for one call.
  ///
  /// Set it once at start-up; curvalid decides where parallelism lives (BLAS threads for one big
  /// batch, or one request per core), and two sources of threads on two cores oversubscribe.
  public static var threadCount: Int {
    get { Int(openblas_get_num_threads()) }
    set { openblas_set_num_threads(Int32(max(1, newValue))) }
  }

  /// `C ← alpha · op(A) · op(B) + beta · C` on raw row-major buffers (`cblas_sgemm`).
  ///
  /// - Parameters:
  ///   - transposeA: Use `Aᵀ`; `A` is then stored `[k, m]`, else `[m, k]`.
  ///   - transposeB: Use `Bᵀ`; `B` is then stored `[n, k]`, else `[k, n]`.
  ///   - m: Rows of `op(A)` and `C`.
  ///   - n: Columns of `op(B)` and `C`.
  ///   - k: Inner dimension.
  ///   - lda, ldb, ldc: Row strides of the stored matrices (≥ their stored column counts).
  /// - Complexity: `2·m·n·k` floating-point operations.
  @inline(__always)
  public static func gemm(
    transposeA: Bool = false, transposeB: Bool = false,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    guard m > 0, n > 0 else { return }
    cblas_sgemm(
      CblasRowMajor,
      transposeA ? CblasTrans : CblasNoTrans,
      transposeB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k),
      alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }

  /// Matrix product of two `Matrix` values: `op(A) · op(B)`.
  ///
  /// - Parameters:
  ///   - a: `[m, k]`, or `[k, m]` when `transposeA`.
  ///   - b: `[k, n]`, or `[n, k]` when `transposeB`.
  /// - Returns: `[m, n]`.
  public static func matmul(
    _ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false
  ) -> Matrix {
    let m = transposeA ? a.columns : a.rows
    let k = transposeA ? a.rows : a.columns
    let kb = transposeB ? b.columns : b.rows
    let n = transposeB ? b.rows : b.columns
    precondition(k == kb, "inner dimensions differ: \(k) vs \(kb)")
    var c = Matrix(rows: m, columns: n)
    if k == 0 { return c }
    a.storage.withUnsafeBufferPointer { pa in
      b.storage.withUnsafeBufferPointer { pb in
        c.storage.withUnsafeMutableBufferPointer { pc in
          gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
            a: pa.firstAddress, lda: a.columns, b: pb.firstAddress, ldb: b.columns,
            c: pc.firstAddress, ldc: n)
        }
      }
    }
    return c
  }
}
