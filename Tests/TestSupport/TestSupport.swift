import Foundation
import LinearAlgebra

/// A small, seeded pseudo-random generator (SplitMix64) so tests are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
  private var state: UInt64

  /// Creates a generator from a seed; the same seed gives the same sequence on every platform.
  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A uniform `Float` in `range`.
  public mutating func uniform(_ range: ClosedRange<Float> = -1...1) -> Float {
    Float.random(in: range, using: &self)
  }

  /// A matrix of uniform values: `[rows, columns]`.
  public mutating func matrix(rows: Int, columns: Int, range: ClosedRange<Float> = -1...1) -> Matrix {
    Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in uniform(range) })
  }
}

/// Whether two float sequences agree within `absolute + relative · |expected|` at every index.
public func allClose<A: Collection, B: Collection>(
  _ actual: A, _ expected: B, absolute: Float = 1e-5, relative: Float = 1e-5
) -> Bool where A.Element == Float, B.Element == Float {
  guard actual.count == expected.count else { return false }
  return zip(actual, expected).allSatisfy { a, e in
    abs(a - e) <= absolute + relative * abs(e) && !a.isNaN
  }
}

/// The largest absolute difference between two equally long float sequences.
public func maxAbsoluteDifference<A: Collection, B: Collection>(_ a: A, _ b: B) -> Float
where A.Element == Float, B.Element == Float {
  precondition(a.count == b.count, "lengths differ: \(a.count) vs \(b.count)")
  return zip(a, b).reduce(0) { Swift.max($0, abs($1.0 - $1.1)) }
}

/// Creates a new, empty directory `<prefix>-<UUID>` under the system's temporary directory; the
/// caller removes it.
public func makeTemporaryDirectory(prefix: String) throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "\(prefix)-\(UUID().uuidString)", isDirectory: true)
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// Locations of committed fixtures and of the downloaded encoder weights.
public enum Fixtures {
  /// The repository's `Fixtures/` directory, found from this source file's path.
  public static var directory: URL {
    URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent()  // TestSupport
      .deletingLastPathComponent()  // Tests
      .deletingLastPathComponent()  // repository root
      .appendingPathComponent("Fixtures")
  }

  /// A file under `Fixtures/`.
  public static func url(_ relativePath: String) -> URL {
    directory.appendingPathComponent(relativePath)
  }

  /// The repository root.
  public static var repositoryRoot: URL { directory.deletingLastPathComponent() }
}
