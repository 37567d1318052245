extension Metrics {
  /// The smallest threshold whose false-positive rate on `benignScores` is at most the target.
  ///
  /// The decision rule is "reject when `score ≥ threshold`", so every benign score *equal* to the
  /// threshold counts as a false positive. With `n` scores and `k = ⌊target · n⌋` allowed false
  /// positives, sorted descending `s₁ ≥ … ≥ sₙ`, the answer is the smallest `Float` strictly above
  /// `s₍ₖ₊₁₎` (`s₍ₖ₊₁₎.nextUp`). Tie rule: a group of tied benign scores is either rejected as a
  /// whole or not at all, so when the group straddles the `k`-th position the threshold moves just
  /// above the group and the reached rate is *below* the target (never above it).
  /// Edge cases: target 0 (or fewer than `1 / target` scores, so `k = 0`) gives the smallest
  /// threshold above the highest benign score (no benign prompt rejected); target ≥ 1 gives the
  /// lowest benign score (every benign prompt rejected).
  ///
  /// - Parameters:
  ///   - benignScores: Scores of benign validation examples (finite).
  ///   - targetFalsePositiveRate: The largest acceptable fraction, in [0, ∞).
  /// - Returns: The threshold.
  /// - Throws: `DetectionError.invalidInput` when the list is empty, a score is not finite, or the
  ///   target is negative or NaN.
  /// - Complexity: O(n log n).
  public static func threshold(forBenignScores benignScores: [Float], targetFalsePositiveRate: Double) throws
    -> Float
  {
    guard !benignScores.isEmpty else {
      throw DetectionError(.invalidInput, "cannot calibrate a threshold on no benign scores")
    }
    guard targetFalsePositiveRate >= 0 else {
      throw DetectionError(
        .invalidInput, "target false-positive rate must be in [0, 1], got \(targetFalsePositiveRate)")
    }
    guard benignScores.allSatisfy(\.isFinite) else {
      throw DetectionError(.invalidInput, "cannot calibrate a threshold on non-finite benign scores")
    }
    let sorted = benignScores.sorted(by: >)
    guard targetFalsePositiveRate < 1 else { return sorted[sorted.count - 1] }
    // The tolerance keeps e.g. 0.29 × 100 = 28.999999999999996 from losing an allowed false positive.
    let allowed = Int((targetFalsePositiveRate * Double(sorted.count) + 1e-9).rounded(.down))
    guard allowed < sorted.count else { return sorted[sorted.count - 1] }
    return sorted[allowed].nextUp
  }

  /// The true-positive rate when the threshold is calibrated on the examples' own benign scores to
  /// `falsePositiveRate` (an oracle calibration: the rate a perfectly calibrated threshold reaches).
  ///
  /// - Parameters:
  ///   - examples: Scored examples with both classes.
  ///   - falsePositiveRate: The target benign false-positive rate, e.g. 0.01.
  /// - Returns: The fraction of attacks with `score ≥` the calibrated threshold.
  /// - Throws: `DetectionError.invalidInput` when a class is absent or calibration fails.
  public static func tprAtFPR(_ examples: [ScoredExample], _ falsePositiveRate: Double) throws -> Double {
    let threshold = try calibratedThreshold(examples, falsePositiveRate)
    guard let rate = truePositiveRate(examples, threshold: threshold) else {
      throw DetectionError(.invalidInput, "no attack examples to measure a true-positive rate on")
    }
    return rate
  }

  /// The macro true-positive rate over attack families at a threshold calibrated on the examples'
  /// own benign scores to `falsePositiveRate`.
  ///
  /// - Throws: `DetectionError.invalidInput` when a class is absent or calibration fails.
  public static func macroTPRAtFPR(_ examples: [ScoredExample], _ falsePositiveRate: Double) throws -> Double
  {
    let threshold = try calibratedThreshold(examples, falsePositiveRate)
    guard let rate = macroTPR(examples, threshold: threshold) else {
      throw DetectionError(.invalidInput, "no attack examples to measure a true-positive rate on")
    }
    return rate
  }

  /// The threshold calibrated on the benign examples of `examples`.
  static func calibratedThreshold(_ examples: [ScoredExample], _ falsePositiveRate: Double) throws -> Float {
    let benign = examples.filter { !$0.isAttack }.map(\.score)
    guard !benign.isEmpty else {
      throw DetectionError(.invalidInput, "no benign examples to calibrate a threshold on")
    }
    return try threshold(forBenignScores: benign, targetFalsePositiveRate: falsePositiveRate)
  }
}
