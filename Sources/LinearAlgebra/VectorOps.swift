#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Element-wise and row-wise kernels used by the networks, all in place on flat row-major buffers.
///
/// Each kernel takes `UnsafeMutableBufferPointer`s so callers keep their workspaces and run hot loops
/// without allocation or bounds checks. Large jobs are split across `BLAS.threadCount` workers.
public enum VectorOps {
  /// The fewest elements worth splitting across threads (smaller jobs cost more to hand out).
  static let parallelElements = 16_384

  /// Adds `bias` (`[columns]`) to every row of `x` (`[rows, columns]`).
  @inlinable
  public static func addRowVector(
    _ x: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int, _ bias: UnsafeBufferPointer<Float>
  ) {
    precondition(bias.count >= columns && x.count >= rows * columns)
    for r in 0..<rows {
      let base = r * columns
      for c in 0..<columns { x[base + c] += bias[c] }
    }
  }

  /// `x ← max(x, 0)` element-wise.
  @inlinable
  public static func relu(_ x: UnsafeMutableBufferPointer<Float>) {
    for i in x.indices where x[i] < 0 { x[i] = 0 }
  }

  /// Numerically stable softmax of each row of `x` (`[rows, columns]`), in place.
  ///
  /// Exponentials come from `FastMath.exp` (relative error below 3e-7).
  public static func softmaxRows(_ x: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int) {
    precondition(x.count >= rows * columns)
    guard columns > 0, let base = x.baseAddress else { return }
    for r in 0..<rows {
      let row = base + r * columns
      // Separate passes so each one vectorises (a float reduction fused with the exponentials
      // would not be), and four partial sums for the same reason.
      var maximum = -Float.infinity
      for c in 0..<columns {
        let v = row[c]
        maximum = v > maximum ? v : maximum
      }
      for c in 0..<columns { row[c] = FastMath.exp(row[c] - maximum) }
      var sums: (Float, Float, Float, Float) = (0, 0, 0, 0)
      var c = 0
      while c + 4 <= columns {
        sums.0 += row[c]
        sums.1 += row[c + 1]
        sums.2 += row[c + 2]
        sums.3 += row[c + 3]
        c += 4
      }
      while c < columns {
        sums.0 += row[c]
        c += 1
      }
      let scale = 1 / ((sums.0 + sums.1) + (sums.2 + sums.3))
      for c in 0..<columns { row[c] *= scale }
    }
  }

  /// Layer normalisation of each row of `x` (`[rows, columns]`), in place:
  /// `y = (x − mean) / sqrt(var + eps) · gamma + beta`, with the biased variance (as PyTorch).
  ///
  /// For back-propagation it can also keep `x̂ = (x − mean) / sqrt(var + eps)` in `normalized`
  /// (`[rows, columns]`) and `1 / sqrt(var + eps)` in `inverseDeviation` (`[rows]`).
  public static func layerNormRows(
    _ x: UnsafeMutableBufferPointer<Float>, rows: Int, columns: Int,
    gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>, epsilon: Float,
    normalized: UnsafeMutablePointer<Float>? = nil, inverseDeviation: UnsafeMutablePointer<Float>? = nil
  ) {
    precondition(x.count >= rows * columns && gamma.count >= columns && beta.count >= columns)
    guard columns > 0, let base = x.baseAddress, let g = gamma.baseAddress, let b = beta.baseAddress else {
      return
    }
    let n = Float(columns)
    Parallel.forEachChunk(count: rows, minimumChunk: max(1, parallelElements / columns)) { chunk, _ in
      for r in chunk {
        let row = base + r * columns
        var sum: Float = 0
        for c in 0..<columns { sum += row[c] }
        let mean = sum / n
        var squares: Float = 0
        for c in 0..<columns {
          let d = row[c] - mean
          squares += d * d
        }
        let inverse = 1 / (squares / n + epsilon).squareRoot()
        inverseDeviation?[r] = inverse
        if let normalized {
          let hat = normalized + r * columns
          for c in 0..<columns {
            hat[c] = (row[c] - mean) * inverse
            row[c] = hat[c] * g[c] + b[c]
          }
        } else {
          for c in 0..<columns { row[c] = (row[c] - mean) * inverse * g[c] + b[c] }
        }
      }
    }
  }

  /// The exact (erf-based) GELU, `x · Φ(x) = 0.5 · x · (1 + erf(x / √2))`, element-wise in place.
  ///
  /// `erf` is evaluated with `FastMath.erf` (absolute error below 5e-7).
  public static func gelu(_ x: UnsafeMutableBufferPointer<Float>) {
    guard let base = x.baseAddress else { return }
    Parallel.forEachChunk(count: x.count, minimumChunk: parallelElements) { chunk, _ in
      geluSerial(base + chunk.lowerBound, count: chunk.count)
    }
  }

  /// `gelu` on `count` contiguous elements at `x`, on the calling thread.
  @inline(__always)
  static func geluSerial(_ x: UnsafeMutablePointer<Float>, count: Int) {
    let inverseRoot2: Float = 0.707_106_781_186_547_5
    for i in 0..<count {
      let v = x[i]
      x[i] = 0.5 * v * (1 + FastMath.erf(v * inverseRoot2))
    }
  }
}
