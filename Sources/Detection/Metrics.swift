import Foundation

/// One evaluated prompt: the model's score, the true label and the grouping used in reports.
public struct ScoredExample: Sendable, Equatable, Codable {
  /// The model's score (probability of "adversarial"); a prompt is rejected when `score ≥ threshold`.
  public var score: Float
  /// The true label: `true` for attacks (adversarial or harmful), `false` for benign prompts.
  public var isAttack: Bool
  /// The corpus family (an attack family or a benign family).
  public var family: String
  /// The corpus source the prompt came from.
  public var source: String
  /// Token rows the encoder produced for the prompt.
  public var tokens: Int
  /// Named feature values (`prompt_lid`, `curvature_conv1`, …), possibly empty.
  public var features: [String: Float]

  /// Creates a scored example.
  public init(
    score: Float, isAttack: Bool, family: String, source: String = "", tokens: Int = 0,
    features: [String: Float] = [:]
  ) {
    self.score = score
    self.isAttack = isAttack
    self.family = family
    self.source = source
    self.tokens = tokens
    self.features = features
  }

  enum CodingKeys: String, CodingKey {
    case score
    case isAttack = "is_attack"
    case family, source, tokens, features
  }
}

/// Confusion-matrix counts and the usual rates at one threshold (reject when `score ≥ threshold`).
///
/// Rates whose denominator is zero are reported as 0 (precision with no rejections, recall with no
/// attacks, false-positive rate with no benign examples), never NaN, so the value always encodes
/// as JSON. `rocAUC` is `nil` when one class is absent.
public struct BinaryMetrics: Sendable, Equatable, Codable {
  /// Number of examples.
  public var count: Int
  /// Number of attacks.
  public var positives: Int
  /// Number of benign examples.
  public var negatives: Int
  /// Attacks rejected.
  public var truePositives: Int
  /// Benign examples rejected.
  public var falsePositives: Int
  /// Benign examples accepted.
  public var trueNegatives: Int
  /// Attacks accepted.
  public var falseNegatives: Int
  /// `(TP + TN) / count`.
  public var accuracy: Double
  /// `TP / (TP + FP)`.
  public var precision: Double
  /// `TP / positives`: the true-positive rate.
  public var recall: Double
  /// Harmonic mean of precision and recall.
  public var f1: Double
  /// `FP / negatives`.
  public var falsePositiveRate: Double
  /// Area under the ROC curve, threshold-free; `nil` when one class is absent.
  public var rocAUC: Double?

  /// The true-positive rate (same as `recall`).
  public var truePositiveRate: Double { recall }

  /// Creates metrics from confusion-matrix counts and an optional AUC.
  public init(
    truePositives: Int, falsePositives: Int, trueNegatives: Int, falseNegatives: Int, rocAUC: Double?
  ) {
    self.truePositives = truePositives
    self.falsePositives = falsePositives
    self.trueNegatives = trueNegatives
    self.falseNegatives = falseNegatives
    self.positives = truePositives + falseNegatives
    self.negatives = falsePositives + trueNegatives
    self.count = positives + negatives
    self.accuracy = Metrics.ratio(truePositives + trueNegatives, count)
    self.precision = Metrics.ratio(truePositives, truePositives + falsePositives)
    self.recall = Metrics.ratio(truePositives, positives)
    self.f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
    self.falsePositiveRate = Metrics.ratio(falsePositives, negatives)
    self.rocAUC = rocAUC
  }

  /// Computes the metrics of `examples` at `threshold`.
  ///
  /// - Parameters:
  ///   - examples: Scored, labelled examples.
  ///   - threshold: Reject when `score ≥ threshold` (a NaN score is never rejected).
  /// - Returns: Counts, rates and the ROC AUC (`nil` when one class is absent).
  /// - Complexity: O(n log n) for the AUC.
  public static func compute(_ examples: [ScoredExample], threshold: Float) -> BinaryMetrics {
    var tp = 0
    var fp = 0
    var tn = 0
    var fn = 0
    for example in examples {
      let rejected = example.score >= threshold
      switch (example.isAttack, rejected) {
      case (true, true): tp += 1
      case (true, false): fn += 1
      case (false, true): fp += 1
      case (false, false): tn += 1
      }
    }
    return BinaryMetrics(
      truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn,
      rocAUC: Metrics.rocAUC(examples))
  }

  enum CodingKeys: String, CodingKey {
    case count, positives, negatives
    case truePositives = "true_positives"
    case falsePositives = "false_positives"
    case trueNegatives = "true_negatives"
    case falseNegatives = "false_negatives"
    case accuracy, precision, recall, f1
    case falsePositiveRate = "false_positive_rate"
    case rocAUC = "roc_auc"
  }
}

/// A receiver-operating-characteristic curve: one point per distinct score.
///
/// Point `i` is the rule "reject when `score ≥ points[i].threshold`". Tied scores move together, so
/// a group of tied attacks and benign prompts is one diagonal step (never a staircase whose shape
/// depends on input order); the trapezoid area under such a step counts each tied
/// (attack, benign) pair as ½, which makes `auc` equal to the Mann–Whitney statistic
/// `U / (P · N)` (Hanley & McNeil, "The meaning and use of the area under a ROC curve", 1982).
/// NaN scores rank as −∞ (a NaN score is never rejected, since `NaN ≥ t` is false).
public struct ROCCurve: Sendable, Equatable, Codable {
  /// One operating point.
  public struct Point: Sendable, Equatable, Codable {
    /// False-positive rate: benign examples with `score ≥ threshold`, over all benign examples.
    public var falsePositiveRate: Double
    /// True-positive rate: attacks with `score ≥ threshold`, over all attacks.
    public var truePositiveRate: Double
    /// The threshold of this point.
    public var threshold: Float

    /// Creates a point.
    public init(falsePositiveRate: Double, truePositiveRate: Double, threshold: Float) {
      self.falsePositiveRate = falsePositiveRate
      self.truePositiveRate = truePositiveRate
      self.threshold = threshold
    }

    enum CodingKeys: String, CodingKey {
      case falsePositiveRate = "fpr"
      case truePositiveRate = "tpr"
      case threshold
    }
  }

  /// Points from (0, 0) (the first threshold lies just above the highest score) to (1, 1), with
  /// thresholds strictly decreasing.
  public let points: [Point]
  /// Number of attacks.
  public let positives: Int
  /// Number of benign examples.
  public let negatives: Int
  /// Area under the curve by the trapezoid rule.
  public let auc: Double

  /// Builds the curve of `examples`; `nil` when there are no attacks or no benign examples.
  ///
  /// - Complexity: O(n log n).
  public init?(_ examples: [ScoredExample]) {
    let positive = examples.filter(\.isAttack).map(\.score)
    let negative = examples.filter { !$0.isAttack }.map(\.score)
    self.init(positiveScores: positive, negativeScores: negative)
  }

  /// Builds the curve from the scores of attacks and benign examples; `nil` when either is empty.
  ///
  /// - Complexity: O(n log n).
  public init?(positiveScores: [Float], negativeScores: [Float]) {
    guard !positiveScores.isEmpty, !negativeScores.isEmpty else { return nil }
    var labelled: [(key: Float, isPositive: Bool)] = []
    labelled.reserveCapacity(positiveScores.count + negativeScores.count)
    for score in positiveScores { labelled.append((Metrics.rankKey(score), true)) }
    for score in negativeScores { labelled.append((Metrics.rankKey(score), false)) }
    labelled.sort { $0.key > $1.key }

    let p = Double(positiveScores.count)
    let n = Double(negativeScores.count)
    let top = labelled[0].key
    var points = [Point(falsePositiveRate: 0, truePositiveRate: 0, threshold: top.nextUp)]
    var tp = 0
    var fp = 0
    var area = 0.0  // in units of (count × count); divided by P·N at the end.
    var index = 0
    while index < labelled.count {
      let key = labelled[index].key
      let (previousTP, previousFP) = (tp, fp)
      while index < labelled.count, labelled[index].key == key {
        if labelled[index].isPositive { tp += 1 } else { fp += 1 }
        index += 1
      }
      area += Double(fp - previousFP) * Double(tp + previousTP) / 2
      points.append(
        Point(falsePositiveRate: Double(fp) / n, truePositiveRate: Double(tp) / p, threshold: key))
    }
    self.points = points
    self.positives = positiveScores.count
    self.negatives = negativeScores.count
    self.auc = area / (p * n)
  }

  enum CodingKeys: String, CodingKey {
    case points, positives, negatives, auc
  }
}

/// Pure functions over scored examples: AUC, macro rates, length matching, calibration.
public enum Metrics {
  /// ROC AUC of `examples` (attacks are the positive class); `nil` when one class is absent.
  ///
  /// Computed as the Mann–Whitney statistic with ties counting ½; equal to `ROCCurve.auc`.
  /// - Complexity: O(n log n).
  public static func rocAUC(_ examples: [ScoredExample]) -> Double? {
    mannWhitneyAUC(
      positiveScores: examples.filter(\.isAttack).map(\.score),
      negativeScores: examples.filter { !$0.isAttack }.map(\.score))
  }

  /// The probability that a random attack scores above a random benign example, ties counting ½:
  /// `U / (P · N)` with `U = R₊ − P(P + 1)/2`, `R₊` the sum of the attacks' mid-ranks.
  ///
  /// - Parameters:
  ///   - positiveScores: Scores of attacks.
  ///   - negativeScores: Scores of benign examples.
  /// - Returns: The AUC in [0, 1], or `nil` when either list is empty.
  /// - Complexity: O(n log n).
  public static func mannWhitneyAUC(positiveScores: [Float], negativeScores: [Float]) -> Double? {
    guard !positiveScores.isEmpty, !negativeScores.isEmpty else { return nil }
    var all = positiveScores.map { (key: rankKey($0), isPositive: true) }
    all += negativeScores.map { (key: rankKey($0), isPositive: false) }
    all.sort { $0.key < $1.key }
    var positiveRankSum = 0.0
    var start = 0
    while start < all.count {
      var end = start
      var positivesInGroup = 0
      while end < all.count, all[end].key == all[start].key {
        if all[end].isPositive { positivesInGroup += 1 }
        end += 1
      }
      // Ranks start + 1 … end share their mean.
      let midRank = Double(start + 1 + end) / 2
      positiveRankSum += midRank * Double(positivesInGroup)
      start = end
    }
    let p = Double(positiveScores.count)
    let n = Double(negativeScores.count)
    let u = positiveRankSum - p * (p + 1) / 2
    return u / (p * n)
  }

  /// The fraction of attacks in `examples` with `score ≥ threshold`; `nil` when there are none.
  public static func truePositiveRate(_ examples: [ScoredExample], threshold: Float) -> Double? {
    let attacks = examples.filter(\.isAttack)
    guard !attacks.isEmpty else { return nil }
    return ratio(attacks.count(where: { $0.score >= threshold }), attacks.count)
  }

  /// The fraction of benign examples with `score ≥ threshold`; `nil` when there are none.
  public static func falsePositiveRate(_ examples: [ScoredExample], threshold: Float) -> Double? {
    let benign = examples.filter { !$0.isAttack }
    guard !benign.isEmpty else { return nil }
    return ratio(benign.count(where: { $0.score >= threshold }), benign.count)
  }

  /// The mean over attack families of each family's true-positive rate at `threshold`, so that a
  /// large family does not dominate; `nil` when there are no attacks.
  ///
  /// - Complexity: O(n).
  public static func macroTPR(_ examples: [ScoredExample], threshold: Float) -> Double? {
    var perFamily: [String: (rejected: Int, total: Int)] = [:]
    for example in examples where example.isAttack {
      perFamily[example.family, default: (0, 0)].total += 1
      if example.score >= threshold { perFamily[example.family, default: (0, 0)].rejected += 1 }
    }
    guard !perFamily.isEmpty else { return nil }
    let rates = perFamily.keys.sorted().compactMap { family in
      perFamily[family].map { ratio($0.rejected, $0.total) }
    }
    return rates.reduce(0, +) / Double(rates.count)
  }

  /// A length-matched subset: within each token-count bin, equally many attacks and benign examples.
  ///
  /// Bins are `bins` equal intervals of `log(tokens)` between the smallest and largest token count
  /// (counts below 1 are treated as 1). In each bin the larger class is subsampled, without
  /// replacement, to the size of the smaller one; a bin lacking one class contributes nothing. The
  /// draw uses a SplitMix64 generator seeded with `seed`, so the same input (in the same order)
  /// and seed give the same subset. Selected examples keep their input order.
  ///
  /// - Parameters:
  ///   - examples: Scored examples with token counts.
  ///   - bins: Number of log-spaced bins (≥ 1).
  ///   - seed: Seed of the subsampling.
  /// - Returns: The subset and, per bin, its token range and the number of pairs kept.
  /// - Throws: `DetectionError.invalidInput` when `bins < 1`.
  /// - Complexity: O(n).
  public static func lengthMatched(
    _ examples: [ScoredExample], bins: Int, seed: UInt64 = 0
  ) throws -> LengthMatchedSubset {
    guard bins >= 1 else {
      throw DetectionError(.invalidInput, "length matching needs at least one bin, got \(bins)")
    }
    guard let minTokens = examples.map({ Swift.max(1, $0.tokens) }).min(),
      let maxTokens = examples.map({ Swift.max(1, $0.tokens) }).max()
    else {
      return LengthMatchedSubset(examples: [], bins: [])
    }
    let low = Double(minTokens).logarithm
    let high = Double(maxTokens).logarithm
    let width = (high - low) / Double(bins)
    func binIndex(_ tokens: Int) -> Int {
      guard width > 0 else { return 0 }
      let position = (Double(Swift.max(1, tokens)).logarithm - low) / width
      return Swift.min(bins - 1, Swift.max(0, Int(position)))
    }
    var attacks = [[Int]](repeating: [], count: bins)
    var benign = [[Int]](repeating: [], count: bins)
    for (index, example) in examples.enumerated() {
      let bin = binIndex(example.tokens)
      if example.isAttack { attacks[bin].append(index) } else { benign[bin].append(index) }
    }
    var generator = SplitMix64(seed: seed)
    var selected: [Int] = []
    var summaries: [LengthMatchedSubset.Bin] = []
    for bin in 0..<bins {
      let pairs = Swift.min(attacks[bin].count, benign[bin].count)
      selected += sample(attacks[bin], count: pairs, using: &generator)
      selected += sample(benign[bin], count: pairs, using: &generator)
      let lower = width > 0 ? (low + width * Double(bin)).exponential : Double(minTokens)
      let upper = width > 0 ? (low + width * Double(bin + 1)).exponential : Double(maxTokens)
      summaries.append(
        LengthMatchedSubset.Bin(
          lowerTokens: lower, upperTokens: upper, attacks: attacks[bin].count, benign: benign[bin].count,
          pairs: pairs))
    }
    selected.sort()
    return LengthMatchedSubset(examples: selected.map { examples[$0] }, bins: summaries)
  }

  /// `numerator / denominator`, or 0 when the denominator is 0.
  static func ratio(_ numerator: Int, _ denominator: Int) -> Double {
    denominator == 0 ? 0 : Double(numerator) / Double(denominator)
  }

  /// The sort key of a score: NaN ranks below every number.
  static func rankKey(_ score: Float) -> Float {
    score.isNaN ? -.infinity : score
  }

  /// `count` indices drawn without replacement (partial Fisher–Yates), deterministic for a generator.
  private static func sample(_ indices: [Int], count: Int, using generator: inout SplitMix64) -> [Int] {
    guard count < indices.count else { return indices }
    var pool = indices
    for i in 0..<count {
      let j = i + Int(generator.next() % UInt64(pool.count - i))
      pool.swapAt(i, j)
    }
    return Array(pool[0..<count])
  }
}

/// The result of `Metrics.lengthMatched`: the subset and how each bin contributed.
public struct LengthMatchedSubset: Sendable, Equatable {
  /// One log-spaced token-count bin.
  public struct Bin: Sendable, Equatable, Codable {
    /// Lower edge in tokens (inclusive).
    public var lowerTokens: Double
    /// Upper edge in tokens (exclusive, inclusive for the last bin).
    public var upperTokens: Double
    /// Attacks in the bin before matching.
    public var attacks: Int
    /// Benign examples in the bin before matching.
    public var benign: Int
    /// Attacks (and, equally, benign examples) kept.
    public var pairs: Int

    /// Creates a bin summary.
    public init(lowerTokens: Double, upperTokens: Double, attacks: Int, benign: Int, pairs: Int) {
      self.lowerTokens = lowerTokens
      self.upperTokens = upperTokens
      self.attacks = attacks
      self.benign = benign
      self.pairs = pairs
    }

    enum CodingKeys: String, CodingKey {
      case lowerTokens = "lower_tokens"
      case upperTokens = "upper_tokens"
      case attacks, benign, pairs
    }
  }

  /// The selected examples, in input order.
  public var examples: [ScoredExample]
  /// Per-bin summaries, ascending token counts.
  public var bins: [Bin]
}

/// SplitMix64: a small, seeded, platform-independent generator for deterministic subsampling.
private struct SplitMix64: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

extension Double {
  /// Natural logarithm.
  fileprivate var logarithm: Double { Foundation.log(self) }
  /// `e^self`.
  fileprivate var exponential: Double { Foundation.exp(self) }
}
