/// Branch-free `exp` and `erf` for the encoder's element-wise kernels.
///
/// The C library's `expf`/`erff` are opaque calls, so loops over them cannot be vectorised and cost
/// more than the matrix products at short prompt lengths. These are plain arithmetic (a rounding
/// trick, a polynomial, bit operations and selects), which the optimiser turns into vector code
/// inside the loops of `VectorOps`. Accuracy is checked against the C library in `FastMathTests`.
public enum FastMath {
  /// 1.5·2²³: adding it rounds a float of magnitude below 2²² to an integer (ties to even), and
  /// the integer appears in the low bits of the sum.
  @usableFromInline static var roundingMagic: Float { 12_582_912 }

  /// `eˣ`, relative error below 3e-7 for `−87.3 ≤ x ≤ 88.3`; inputs are clamped to that range, so
  /// smaller ones (including −∞) give about 1.2e-38 and larger ones about 2.2e38.
  ///
  /// Method: `x = k·ln2 + r` with `|r| ≤ ln2/2` (ln 2 split in two parts so `k·ln2` is exact),
  /// `eʳ` by its degree-7 Taylor polynomial, and `2ᵏ` assembled in the exponent bits. Written
  /// with selects and integer arithmetic only, so loops over it vectorise.
  @inlinable @inline(__always)
  public static func exp(_ x: Float) -> Float {
    let clamped = x < -87.3 ? -87.3 : (x > 88.3 ? 88.3 : x)
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
    // The low mantissa bits of `shifted` hold k; move k + 127 into the exponent field.
    let bits = (shifted.bitPattern &- roundingMagic.bitPattern &+ 127) &<< 23
    return p * Float(bitPattern: bits)
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
