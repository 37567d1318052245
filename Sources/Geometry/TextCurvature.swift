import LinearAlgebra

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// TextCurv: the discrete, Whewell-style curvature of a sequence of vectors.
///
/// The sequence `p_0 … p_{n-1}` is read as the rows of a `[n, d]` matrix (for CurvaLID: the
/// per-position outputs of a convolution layer). For each consecutive pair `(p_{i-1}, p_i)`,
/// `i = 1 … n-1`, whose norms are both non-zero:
///
/// - `θ_i = arccos(clamp(p_{i-1}·p_i / (‖p_{i-1}‖ ‖p_i‖), −1, 1))` (the turning angle),
/// - `κ_i = θ_i / (1/‖p_{i-1}‖ + 1/‖p_i‖)` (the angle over a length term built from the norms).
///
/// The prompt's feature is the mean of `κ_i` over the valid pairs, or 0 when there is none.
/// A pair is *valid* when both norms are non-zero and `κ_i` is finite; pairs touching a zero
/// vector (or, defensively, a vector with NaN or infinite coordinates) are skipped, never turned
/// into NaN.
///
/// Reference: Yung, Huang, Leckie, Erfani (2025), "Geometry-guided adversarial prompt detection via
/// curvature and local intrinsic dimension" (CurvaLID), the TextCurv definition.
///
/// Precision: norms and dot products are accumulated in `Double` in one pass over the rows (the
/// product of two `Float`s is exact in `Double`), so `cos θ` carries a relative error of about
/// `d · 1e-16` and `θ` stays accurate to about `1e-7` rad even for near-parallel pairs, where
/// `arccos` is ill-conditioned. Results are returned as `Float`.
public enum TextCurvature {
  /// Per-pair curvature of the rows of `x`, with validity and the mean.
  ///
  /// - Parameter x: The sequence, `[positions, features]`.
  /// - Returns: A profile with `max(positions − 1, 0)` pair values.
  /// - Complexity: `O(positions · features)`, one pass over the rows.
  public static func profile(_ x: Matrix) -> CurvatureProfile {
    x.storage.withUnsafeBufferPointer { profile($0, rows: x.rows, columns: x.columns) }
  }

  /// Per-pair curvature of a row-major buffer holding `[rows, columns]` values.
  ///
  /// Lets callers measure a slice of a larger workspace (one sample of a batch) without copying.
  ///
  /// - Parameters:
  ///   - buffer: At least `rows · columns` values, row after row.
  ///   - rows: Number of positions `n`.
  ///   - columns: Vector dimension `d`.
  /// - Returns: A profile with `max(rows − 1, 0)` pair values.
  /// - Precondition: `rows, columns ≥ 0` and `buffer.count ≥ rows · columns`.
  public static func profile(
    _ buffer: UnsafeBufferPointer<Float>, rows: Int, columns: Int
  ) -> CurvatureProfile {
    precondition(rows >= 0 && columns >= 0, "shape must be non-negative")
    precondition(
      buffer.count >= rows * columns,
      "buffer holds \(buffer.count) values, shape needs \(rows * columns)")
    let pairs = max(rows - 1, 0)
    var values = [Float](repeating: 0, count: pairs)
    var valid = [Bool](repeating: false, count: pairs)
    guard pairs > 0 else { return CurvatureProfile(values: values, valid: valid, mean: 0) }

    var previousNorm = squaredNorm(buffer, offset: 0, count: columns).squareRoot()
    var sum: Double = 0
    var validCount = 0
    for i in 1..<rows {
      let base = i * columns
      var dot: Double = 0
      var squares: Double = 0
      for c in 0..<columns {
        let v = Double(buffer[base + c])
        dot += Double(buffer[base - columns + c]) * v
        squares += v * v
      }
      let norm = squares.squareRoot()
      if previousNorm > 0 && norm > 0 {
        let cosine = min(max(dot / (previousNorm * norm), -1), 1)
        let kappa = acos(cosine) / (1 / previousNorm + 1 / norm)
        if kappa.isFinite {
          values[i - 1] = Float(kappa)
          valid[i - 1] = true
          sum += kappa
          validCount += 1
        }
      }
      previousNorm = norm
    }
    let mean = validCount > 0 ? Float(sum / Double(validCount)) : 0
    return CurvatureProfile(values: values, valid: valid, mean: mean)
  }

  /// The TextCurv feature: the mean curvature over valid consecutive pairs of rows (0 if none).
  ///
  /// - Parameter x: The sequence, `[positions, features]`.
  /// - Returns: The mean of `κ_i` over the valid pairs.
  /// - Complexity: `O(positions · features)`.
  public static func mean(_ x: Matrix) -> Float { profile(x).mean }

  /// Summary statistics of the valid `κ_i` of the rows of `x` (all zero when there is none).
  ///
  /// - Parameter x: The sequence, `[positions, features]`.
  /// - Complexity: `O(positions · features + positions · log positions)`.
  public static func statistics(_ x: Matrix) -> CurvatureStatistics { profile(x).statistics }

  private static func squaredNorm(_ buffer: UnsafeBufferPointer<Float>, offset: Int, count: Int) -> Double {
    var squares: Double = 0
    for c in 0..<count {
      let v = Double(buffer[offset + c])
      squares += v * v
    }
    return squares
  }
}

/// The curvature of every consecutive pair of a sequence, as computed by `TextCurvature`.
///
/// NaN-free: an invalid pair (a zero-norm vector) holds 0 in `values` and `false` in `valid`.
public struct CurvatureProfile: Sendable, Equatable {
  /// `κ` of the pair `(p_i, p_{i+1})` at index `i`, `i = 0 … n−2`; 0 where the pair is invalid:
  /// `[max(n − 1, 0)]`.
  public let values: [Float]
  /// Whether the pair at the same index had two non-zero norms (and so counts in the mean).
  public let valid: [Bool]
  /// The mean of the valid values, 0 when there is none (the TextCurv feature).
  public let mean: Float

  /// Creates a profile.
  /// - Precondition: `values.count == valid.count`.
  public init(values: [Float], valid: [Bool], mean: Float) {
    precondition(values.count == valid.count, "values and validity differ in length")
    self.values = values
    self.valid = valid
    self.mean = mean
  }

  /// The number of valid pairs.
  public var validCount: Int { valid.reduce(0) { $0 + ($1 ? 1 : 0) } }

  /// The values of the valid pairs only, in sequence order.
  public var validValues: [Float] {
    zip(values, valid).compactMap { value, isValid in isValid ? value : nil }
  }

  /// Summary statistics over the valid values (all zero when there is none).
  public var statistics: CurvatureStatistics { CurvatureStatistics(validValues) }
}

/// Summary statistics of a set of curvature values, for richer per-prompt features.
///
/// Quantiles interpolate linearly between order statistics (Hyndman and Fan's type 7, the default
/// of NumPy and R): the `q`-quantile sits at position `q · (count − 1)` of the sorted values.
/// Sums are accumulated in `Double`.
public struct CurvatureStatistics: Sendable, Equatable {
  /// Number of values summarized.
  public let count: Int
  /// Arithmetic mean.
  public let mean: Float
  /// Population standard deviation (divides by `count`).
  public let standardDeviation: Float
  /// Smallest value.
  public let minimum: Float
  /// The 0.25-quantile.
  public let lowerQuartile: Float
  /// The 0.5-quantile.
  public let median: Float
  /// The 0.75-quantile.
  public let upperQuartile: Float
  /// Largest value.
  public let maximum: Float

  /// Computes the statistics of `values`; every field is 0 when `values` is empty.
  ///
  /// - Parameter values: Finite values in any order.
  /// - Complexity: `O(n log n)` for the sort.
  public init(_ values: [Float]) {
    count = values.count
    guard !values.isEmpty else {
      (mean, standardDeviation, minimum, maximum) = (0, 0, 0, 0)
      (lowerQuartile, median, upperQuartile) = (0, 0, 0)
      return
    }
    let sorted = values.sorted()
    var sum: Double = 0
    for v in sorted { sum += Double(v) }
    let average = sum / Double(sorted.count)
    var squares: Double = 0
    for v in sorted {
      let d = Double(v) - average
      squares += d * d
    }
    mean = Float(average)
    standardDeviation = Float((squares / Double(sorted.count)).squareRoot())
    minimum = sorted[0]
    maximum = sorted[sorted.count - 1]
    lowerQuartile = Self.quantile(sorted, 0.25)
    median = Self.quantile(sorted, 0.5)
    upperQuartile = Self.quantile(sorted, 0.75)
  }

  /// The features in a fixed order: count, mean, standard deviation, minimum, lower quartile,
  /// median, upper quartile, maximum: `[8]`.
  public var vector: [Float] {
    [Float(count), mean, standardDeviation, minimum, lowerQuartile, median, upperQuartile, maximum]
  }

  /// The `q`-quantile of non-empty ascending `sorted` values by linear interpolation.
  private static func quantile(_ sorted: [Float], _ q: Double) -> Float {
    let position = q * Double(sorted.count - 1)
    let lower = Int(position.rounded(.down))
    let upper = min(lower + 1, sorted.count - 1)
    let fraction = position - Double(lower)
    return Float(Double(sorted[lower]) + fraction * (Double(sorted[upper]) - Double(sorted[lower])))
  }
}
