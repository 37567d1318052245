/// Branch-free `exp` and `erf` for the encoder's element-wise kernels.
///
/// The C library's `expf`/`erff` are opaque calls, so loops over them cannot be vectorised and cost
/// more than the matrix products at short prompt lengths. These are plain arithmetic (a rounding
/// trick, a polynomial, bit operations and selects), which the optimiser turns into vector code
/// inside the loops of `VectorOps`. Accuracy is checked against the C library in `FastMathTests`.
public enum FastMath {
  /// 1.5·2²³: adding it rounds a float of magnitude below 2²² to an integer (ties to even), and
  /// the integer appears in the low bits of the sum.
  @usableFromInline static let roundingMagic: Float = 12_582_912

  /// `eˣ`, relative error below 3e-7 for results in the normal range; inputs below −87.3 give 0
  /// and above 88.3 give +∞ (exact results there are within 2× of the largest float).
  ///
  /// Method: `x = k·ln2 + r` with `|r| ≤ ln2/2` (ln 2 split in two parts so `k·ln2` is exact),
  /// `eʳ` by its degree-7 Taylor polynomial, and `2ᵏ` assembled in the exponent bits.
  @inlinable @inline(__always)
  public static func exp(_ x: Float) -> Float {
    let clamped = Swift.min(Swift.max(x, -87.3), 88.3)
    let shifted = clamped * 1.442_695_040_888_963_4 + roundingMagic
    let k = shifted - roundingMagic
    let r = clamped - k * 0.693_145_751_953_125 - k * 1.428_606_765_330_187_045e-6
    var p: Float = 1.0 / 5040
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let integer = Int32(bitPattern: shifted.bitPattern &- roundingMagic.bitPattern)
    let scale = Float(bitPattern: UInt32(bitPattern: (integer &+ 127) &<< 23))
    let result = p * scale
    return x < -87.3 ? 0 : (x > 88.3 ? .infinity : result)
  }

  /// `erf(x)`, absolute error below 5e-7 (1.5e-7 from the formula, the rest float rounding).
  ///
  /// Abramowitz & Stegun, "Handbook of Mathematical Functions", formula 7.1.26:
  /// `erf(x) = 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵)·e^(−x²)`, `t = 1/(1 + p·x)` for `x ≥ 0`,
  /// extended to negative `x` by oddness.
  @inlinable @inline(__always)
  public static func erf(_ x: Float) -> Float {
    let a = Swift.abs(x)
    let t = 1 / (1 + 0.327_591_1 * a)
    var poly: Float = 1.061_405_429
    poly = poly * t - 1.453_152_027
    poly = poly * t + 1.421_413_741
    poly = poly * t - 0.284_496_736
    poly = poly * t + 0.254_829_592
    poly = poly * t
    let y = 1 - poly * exp(-(a * a))
    return x < 0 ? -y : y
  }
}
