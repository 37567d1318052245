import LinearAlgebra

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Which estimator of local intrinsic dimensionality to use.
public enum LIDEstimator: String, Sendable, CaseIterable {
  /// Method of moments: `m = mean(r_1 … r_{k−1})`, `LID = m / (r_k − m)` (CurvaLID's PromptLID).
  case methodOfMoments
  /// Maximum likelihood (Hill): `LID = −((1/k) Σ_{i=1…k} log(r_i / r_k))⁻¹`.
  case maximumLikelihood
}

/// Estimators of local intrinsic dimensionality (LID) from the ascending distances of a point to
/// its `k` nearest neighbours, `r_1 ≤ … ≤ r_k`.
///
/// References:
/// - Yung, Huang, Leckie, Erfani (2025), "Geometry-guided adversarial prompt detection via curvature
///   and local intrinsic dimension" (CurvaLID): PromptLID is the method-of-moments estimate with
///   `k = 32` against a reference set of benign prompts, a point never being its own neighbour.
/// - Amsaleg, Chelly, Furon, Girard, Houle, Kawarabayashi, Nett (2015), "Estimating local intrinsic
///   dimensionality" (KDD): the method-of-moments estimator `m / (w − m)` with `w = r_k` and the
///   maximum-likelihood (Hill) estimator `−((1/k) Σ log(r_i / w))⁻¹`.
/// - Levina, Bickel (2004), "Maximum likelihood estimation of intrinsic dimension" (NIPS): the same
///   log-ratio estimator, normalised by `k − 1` (or `k − 2` for an unbiased version) instead of `k`.
///   With the `1/k` normalisation used here the estimate of a `d`-dimensional uniform sample is
///   about `d · k / (k − 1)`.
///
/// Degenerate inputs: both estimators return **0**, never NaN or infinity, when the estimate is
/// undefined. That covers `r_k = 0` (all `k` neighbours coincide with the point: a point mass has
/// dimension 0), `r_k = m` for the method of moments and a zero log sum for maximum likelihood
/// (all distances equal: no growth information), and, for maximum likelihood, any `r_i = 0` (the
/// log sum tends to `−∞`, so 0 is the estimator's limit).
public enum LocalIntrinsicDimension {
  /// The smallest `k` either estimator accepts.
  public static let minimumNeighbors = 2

  /// The estimate from one point's neighbour distances.
  ///
  /// - Parameters:
  ///   - distances: `r_1 ≤ … ≤ r_k`, ascending, finite, non-negative, `k ≥ 2`: `[k]`.
  ///   - estimator: Which estimator.
  /// - Returns: The LID estimate, finite and non-negative (0 when undefined, see the type's notes).
  /// - Throws: `GeometryError` `.invalidNeighborCount` for `k < 2`, `.nonFiniteValue`, or
  ///   `.invalidDistances` for negative or unsorted distances.
  /// - Complexity: `O(k)`.
  public static func estimate(
    _ distances: UnsafeBufferPointer<Float>, estimator: LIDEstimator
  ) throws(GeometryError) -> Float {
    try validate(distances)
    switch estimator {
    case .methodOfMoments: return methodOfMoments(validated: distances)
    case .maximumLikelihood: return maximumLikelihood(validated: distances)
    }
  }

  /// The estimate from an array of ascending distances `[k]`; see `estimate(_:estimator:)`.
  public static func estimate(_ distances: [Float], estimator: LIDEstimator) throws(GeometryError) -> Float {
    let result: Result<Float, GeometryError> = distances.withUnsafeBufferPointer { buffer in
      do throws(GeometryError) {
        return .success(try estimate(buffer, estimator: estimator))
      } catch {
        return .failure(error)
      }
    }
    return try result.get()
  }

  /// One LID estimate per query row from its `k` nearest points of `reference`.
  ///
  /// Builds a `LIDReference` for one call; keep a `LIDReference` to score many batches.
  ///
  /// - Parameters:
  ///   - queries: `[queries, dimension]`.
  ///   - reference: `[references, dimension]`, at least one row.
  ///   - k: Neighbours, `2 ≤ k ≤ references` (`references − 1` when `excludingSelf`).
  ///   - estimator: Which estimator.
  ///   - excludingSelf: Query row `i` is reference row `i` and must not be its own neighbour.
  /// - Returns: `[queries]` finite, non-negative estimates.
  /// - Throws: `GeometryError` for an empty reference, mismatched dimensions, an out-of-range `k`
  ///   or non-finite coordinates.
  public static func estimate(
    queries: Matrix, reference: Matrix, k: Int, estimator: LIDEstimator = .methodOfMoments,
    excludingSelf: Bool = false
  ) throws(GeometryError) -> [Float] {
    try LIDReference(reference).lid(of: queries, k: k, estimator: estimator, excludingSelf: excludingSelf)
  }

  /// Checks `k ≥ 2` and that the distances are finite, non-negative and ascending.
  static func validate(_ distances: UnsafeBufferPointer<Float>) throws(GeometryError) {
    guard distances.count >= minimumNeighbors else {
      throw GeometryError(
        .invalidNeighborCount, "LID needs k ≥ \(minimumNeighbors) distances, got \(distances.count)")
    }
    var previous: Float = 0
    for (i, r) in distances.enumerated() {
      guard r.isFinite else { throw GeometryError(.nonFiniteValue, "distance \(i) is \(r)") }
      guard r >= previous else {
        throw GeometryError(
          .invalidDistances,
          r < 0 ? "distance \(i) is negative (\(r))" : "distances are not ascending at index \(i)")
      }
      previous = r
    }
  }

  /// Method of moments on validated distances: `m = mean(r_1 … r_{k−1})`, `m / (r_k − m)`.
  static func methodOfMoments(validated distances: UnsafeBufferPointer<Float>) -> Float {
    let k = distances.count
    let farthest = Double(distances[k - 1])
    guard farthest > 0 else { return 0 }
    var sum: Double = 0
    for i in 0..<(k - 1) { sum += Double(distances[i]) }
    let mean = sum / Double(k - 1)
    let gap = farthest - mean
    guard gap > 0 else { return 0 }
    let value = mean / gap
    return value.isFinite ? Float(value) : 0
  }

  /// Maximum likelihood on validated distances: `−((1/k) Σ_{i=1…k} log(r_i / r_k))⁻¹`.
  ///
  /// The `i = k` term is zero, so the sum runs over `k − 1` ratios but is divided by `k`.
  static func maximumLikelihood(validated distances: UnsafeBufferPointer<Float>) -> Float {
    let k = distances.count
    let farthest = Double(distances[k - 1])
    guard farthest > 0 else { return 0 }
    var sum: Double = 0
    for i in 0..<(k - 1) {
      let r = Double(distances[i])
      guard r > 0 else { return 0 }
      sum += log(r / farthest)
    }
    let meanLog = sum / Double(k)
    guard meanLog < 0 else { return 0 }
    let value = -1 / meanLog
    return value.isFinite ? Float(value) : 0
  }
}

/// A reference set (for CurvaLID: Dense(128) activations of benign training prompts) against which
/// the LID of query points is estimated. Prepare it once; it is immutable and `Sendable`.
public struct LIDReference: Sendable {
  /// The exact neighbour search over the reference points (holds the precomputed norms).
  public let neighbors: NearestNeighbors

  /// Prepares a reference set.
  ///
  /// - Parameter reference: The reference points, `[references, dimension]`, at least one row.
  /// - Throws: `GeometryError` `.emptyReference` or `.nonFiniteValue`.
  public init(_ reference: Matrix) throws(GeometryError) {
    neighbors = try NearestNeighbors(reference: reference)
  }

  /// The reference points: `[references, dimension]`.
  public var reference: Matrix { neighbors.reference }

  /// Number of reference points.
  public var count: Int { neighbors.count }

  /// The LID of each query row from its `k` nearest reference points.
  ///
  /// - Parameters:
  ///   - queries: `[queries, dimension]`.
  ///   - k: Neighbours, `2 ≤ k ≤ references` (`references − 1` when `excludingSelf`).
  ///   - estimator: Which estimator.
  ///   - excludingSelf: Query row `i` is reference row `i` (the queries are the reference set or its
  ///     first rows) and must not count as its own neighbour. Leave false for outside queries such
  ///     as prompts being scored: they keep their nearest neighbour.
  /// - Returns: `[queries]` finite, non-negative estimates.
  /// - Throws: `GeometryError` for mismatched dimensions, an out-of-range `k` or non-finite
  ///   coordinates.
  /// - Complexity: one neighbour search, `O(queries · references · dimension)`, plus `O(queries · k)`.
  public func lid(
    of queries: Matrix, k: Int, estimator: LIDEstimator = .methodOfMoments, excludingSelf: Bool = false
  ) throws(GeometryError) -> [Float] {
    try Self.requireEnoughNeighbors(k)
    return Self.estimates(
      try neighbors.search(queries, k: k, excludingSelf: excludingSelf), estimator: estimator)
  }

  /// The LID of each query row, with an explicit reference index to exclude per query.
  ///
  /// - Parameters:
  ///   - queries: `[queries, dimension]`.
  ///   - k: Neighbours, `k ≥ 2`.
  ///   - estimator: Which estimator.
  ///   - excludingIndices: Empty, or one entry per query (see `NearestNeighbors.search`).
  /// - Returns: `[queries]` finite, non-negative estimates.
  /// - Throws: `GeometryError` as `NearestNeighbors.search`, and for `k < 2`.
  public func lid(
    of queries: Matrix, k: Int, estimator: LIDEstimator, excludingIndices: [Int?]
  ) throws(GeometryError) -> [Float] {
    try Self.requireEnoughNeighbors(k)
    return Self.estimates(
      try neighbors.search(queries, k: k, excludingIndices: excludingIndices), estimator: estimator)
  }

  /// One estimate per row of a neighbour list (whose distances are ascending and finite); all 0
  /// when the list has fewer than 2 neighbours per query.
  public static func estimates(_ found: NeighborList, estimator: LIDEstimator) -> [Float] {
    let k = found.k
    var result = [Float](repeating: 0, count: found.count)
    guard k >= LocalIntrinsicDimension.minimumNeighbors else { return result }
    found.distances.storage.withUnsafeBufferPointer { all in
      for q in 0..<found.count {
        let row = UnsafeBufferPointer(rebasing: all[(q * k)..<((q + 1) * k)])
        switch estimator {
        case .methodOfMoments: result[q] = LocalIntrinsicDimension.methodOfMoments(validated: row)
        case .maximumLikelihood: result[q] = LocalIntrinsicDimension.maximumLikelihood(validated: row)
        }
      }
    }
    return result
  }

  private static func requireEnoughNeighbors(_ k: Int) throws(GeometryError) {
    guard k >= LocalIntrinsicDimension.minimumNeighbors else {
      throw GeometryError(
        .invalidNeighborCount, "LID needs k ≥ \(LocalIntrinsicDimension.minimumNeighbors), got \(k)")
    }
  }
}
