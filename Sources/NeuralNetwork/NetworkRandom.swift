#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A small, fast, seeded pseudo-random generator (xoshiro256**, state filled by SplitMix64).
///
/// Every random choice the networks make (weight initialisation, dropout masks, shuffling) draws
/// from a `NetworkRandom`, so a given seed reproduces a training run bit for bit (for a fixed BLAS
/// thread count). It conforms to `RandomNumberGenerator`, so `shuffle(using:)` works with it.
public struct NetworkRandom: RandomNumberGenerator, Sendable {
  private var s0: UInt64
  private var s1: UInt64
  private var s2: UInt64
  private var s3: UInt64

  /// Creates a generator whose whole sequence is determined by `seed`.
  /// - Parameter seed: Any value; the four state words are derived from it with SplitMix64.
  public init(seed: UInt64) {
    var x = seed
    func splitMix(_ x: inout UInt64) -> UInt64 {
      x &+= 0x9E37_79B9_7F4A_7C15
      var z = x
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    s0 = splitMix(&x)
    s1 = splitMix(&x)
    s2 = splitMix(&x)
    s3 = splitMix(&x)
  }

  /// The next 64 random bits.
  public mutating func next() -> UInt64 {
    let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
    let t = s1 << 17
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = s3 << 45 | s3 >> 19
    return result
  }

  /// A uniform `Float` in `[0, 1)` with 24 random bits.
  public mutating func nextUnit() -> Float {
    Float(next() >> 40) * 0x1p-24
  }

  /// A uniform `Float` in `[low, high)`.
  public mutating func uniform(_ low: Float, _ high: Float) -> Float {
    low + (high - low) * nextUnit()
  }

  /// A standard normal sample (Box–Muller, computed in `Double`).
  public mutating func normal() -> Float {
    let u1 = (Double(next() >> 11) + 1) * 0x1p-53  // (0, 1]
    let u2 = Double(next() >> 11) * 0x1p-53  // [0, 1)
    return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
  }

  /// A new generator seeded from this one, for a component that owns its own stream.
  public mutating func fork() -> NetworkRandom {
    NetworkRandom(seed: next())
  }
}
