import COpenBLAS
import Synchronization

/// The one door to OpenBLAS: matrix products and the library's thread setting.
///
/// Only this file calls into `COpenBLAS`. All matrices are row-major.
public enum BLAS {
  /// The number of threads one matrix product (and one `Parallel` pass) uses.
  ///
  /// Set it once at start-up; curvalid decides where parallelism lives (threads for one big
  /// batch, or one request per core), and two sources of threads on two cores oversubscribe.
  /// OpenBLAS itself always runs single-threaded: with more than one thread, `gemm` splits the
  /// product's columns (or rows) across a `WorkerTeam`, the same team that runs the element-wise
  /// passes in between, so no idle pool competes with the working one for the cores.
  public static var threadCount: Int {
    get { team.withLock { $0.size } }
    set {
      openblas_set_num_threads(1)
      let size = max(1, newValue)
      team.withLock { current in
        guard current.size != size else { return }
        current.stop()
        current = WorkerTeam(size: size)
      }
    }
  }

  /// The team that runs split products and `Parallel` passes (`threadCount` members).
  /// Until `threadCount` is set it has as many members as OpenBLAS would have used threads
  /// (`OPENBLAS_NUM_THREADS`, else the number of cores).
  static let team: Mutex<WorkerTeam> = {
    let initial = Int(openblas_get_num_threads())
    openblas_set_num_threads(1)
    return Mutex(WorkerTeam(size: initial))
  }()

  /// The current team.
  static var currentTeam: WorkerTeam { team.withLock { $0 } }

  /// Products smaller than this many multiply-adds run on one thread (splitting costs more).
  static let splitMultiplyAdds = 1_000_000

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
    let team = currentTeam
    let parts = team.size
    // Inside a team job (an attention chunk) the team is busy: one call on this thread.
    guard parts > 1, m * n * k >= splitMultiplyAdds, n >= 32 * parts || m >= 8 * parts, !team.isBusy else {
      sgemm(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
      return
    }
    // Each part packs a column slice of B and all of A, or a row slice of A and all of B: split
    // the larger side (when it is wide enough). Columns are cut at multiples of 16 so every part
    // keeps whole vector-kernel panels.
    let byColumns = n >= 32 * parts && (n >= m || m < 8 * parts)
    let addresses = (a: UInt(bitPattern: a), b: UInt(bitPattern: b), c: UInt(bitPattern: c))
    team.run { part in
      guard let a = UnsafePointer<Float>(bitPattern: addresses.a),
        let b = UnsafePointer<Float>(bitPattern: addresses.b),
        let c = UnsafeMutablePointer<Float>(bitPattern: addresses.c)
      else { return }
      if byColumns {
        let start = min(n, (n * part / parts + 8) / 16 * 16)
        let end = part == parts - 1 ? n : min(n, (n * (part + 1) / parts + 8) / 16 * 16)
        guard end > start else { return }
        let bPart = transposeB ? b + start * ldb : b + start
        sgemm(
          transposeA, transposeB, m, end - start, k, alpha, a, lda, bPart, ldb, beta, c + start, ldc)
      } else {
        let start = m * part / parts
        let end = m * (part + 1) / parts
        guard end > start else { return }
        let aPart = transposeA ? a + start : a + start * lda
        sgemm(
          transposeA, transposeB, end - start, n, k, alpha, aPart, lda, b, ldb, beta, c + start * ldc, ldc)
      }
    }
  }

  /// `y ← A · x` for a row-major `A [m, n]` (`cblas_sgemv`), its rows split across the team when
  /// there are at least `splitMultiplyAdds / 4` multiply-adds.
  ///
  /// A product with one vector reads `A` once; `gemm` with `m = 1` would first copy all of it
  /// into OpenBLAS's packed layout, which for a large `A` costs more than the product.
  /// - Parameters:
  ///   - a: `[m, n]` with row stride `lda ≥ n`.
  ///   - x: `[n]`.
  ///   - y: `[m]`, overwritten.
  public static func gemv(
    m: Int, n: Int, a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>
  ) {
    guard m > 0 else { return }
    guard n > 0 else {
      y.update(repeating: 0, count: m)
      return
    }
    let team = currentTeam
    let parts = m * n >= splitMultiplyAdds / 4 ? min(team.size, max(1, m / 64)) : 1
    let addresses = (a: UInt(bitPattern: a), x: UInt(bitPattern: x), y: UInt(bitPattern: y))
    let rows = { (part: Int) in
      let start = m * part / parts
      let end = m * (part + 1) / parts
      guard end > start, let a = UnsafePointer<Float>(bitPattern: addresses.a),
        let x = UnsafePointer<Float>(bitPattern: addresses.x),
        let y = UnsafeMutablePointer<Float>(bitPattern: addresses.y)
      else { return }
      cblas_sgemv(
        CblasRowMajor, CblasNoTrans, Int32(end - start), Int32(n), 1, a + start * lda, Int32(lda), x, 1, 0,
        y + start, 1)
    }
    if parts <= 1 {
      rows(0)
    } else {
      team.run { part in if part < parts { rows(part) } }
    }
  }

  /// `C ← alpha · A · B + beta · C` (no transposes) with one single-threaded `cblas_sgemm` on the
  /// calling thread, for callers that split the work across the team themselves.
  static func sgemmOnCallingThread(
    m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
    ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    guard m > 0, n > 0 else { return }
    sgemm(false, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
  }

  /// `cblas_sgemm` on row-major buffers, on the calling thread.
  @inline(__always)
  private static func sgemm(
    _ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
    _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int
  ) {
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
