/// The result of `curvalid evaluate`: what `--json` prints and what the text tables show.
///
/// Built from scored examples by `init(modelID:threshold:examples:…)`; the optional sections
/// (leave-one-family-out, length-matched, comparison) are attached by the caller, which runs the
/// folds or the other models. All rates are fractions in [0, 1]; JSON keys are snake_case.
public struct EvaluationReport: Sendable, Equatable, Codable {
  /// Metrics of one family or source at the model's threshold.
  public struct GroupRow: Sendable, Equatable, Codable {
    /// The family or source name.
    public var name: String
    /// Examples in the group.
    public var count: Int
    /// Attacks in the group.
    public var attacks: Int
    /// Benign examples in the group.
    public var benign: Int
    /// Fraction of the group's attacks rejected; `nil` without attacks.
    public var truePositiveRate: Double?
    /// Fraction of the group's benign examples rejected; `nil` without benign examples.
    public var falsePositiveRate: Double?
    /// Mean score of the group's examples.
    public var meanScore: Double
    /// AUC of the group's attacks against *all* benign examples of the report; `nil` without
    /// attacks in the group or benign examples in the report.
    public var rocAUC: Double?

    /// Creates a row.
    public init(
      name: String, count: Int, attacks: Int, benign: Int, truePositiveRate: Double?,
      falsePositiveRate: Double?, meanScore: Double, rocAUC: Double?
    ) {
      self.name = name
      self.count = count
      self.attacks = attacks
      self.benign = benign
      self.truePositiveRate = truePositiveRate
      self.falsePositiveRate = falsePositiveRate
      self.meanScore = meanScore
      self.rocAUC = rocAUC
    }

    /// Computes the row of `members` (one group) against the report's benign scores.
    ///
    /// - Parameters:
    ///   - name: The group's name.
    ///   - members: The group's examples.
    ///   - benignScores: Scores of every benign example of the report (for the AUC).
    ///   - threshold: Reject when `score ≥ threshold`.
    public init(name: String, members: [ScoredExample], benignScores: [Float], threshold: Float) {
      let attackScores = members.filter(\.isAttack).map(\.score)
      self.init(
        name: name, count: members.count, attacks: attackScores.count,
        benign: members.count - attackScores.count,
        truePositiveRate: Metrics.truePositiveRate(members, threshold: threshold),
        falsePositiveRate: Metrics.falsePositiveRate(members, threshold: threshold),
        meanScore: members.isEmpty
          ? 0 : members.reduce(0.0) { $0 + Double($1.score) } / Double(members.count),
        rocAUC: Metrics.mannWhitneyAUC(positiveScores: attackScores, negativeScores: benignScores))
    }

    enum CodingKeys: String, CodingKey {
      case name, count, attacks, benign
      case truePositiveRate = "tpr"
      case falsePositiveRate = "fpr"
      case meanScore = "mean_score"
      case rocAUC = "roc_auc"
    }
  }

  /// One fold of leave-one-family-out: a model trained without `family`, tested on that family's
  /// attacks and on benign data held back from its training.
  public struct LeaveOneFamilyOutRow: Sendable, Equatable, Codable {
    /// The held-out attack family.
    public var family: String
    /// Attacks of the family tested.
    public var count: Int
    /// Held-back benign examples tested.
    public var benign: Int
    /// The fold model's threshold.
    public var threshold: Float
    /// Fraction of the family's attacks rejected at the fold model's threshold.
    public var truePositiveRate: Double
    /// AUC of the family's attacks against the held-back benign examples; `nil` without benign.
    public var rocAUC: Double?
    /// Held-back benign examples rejected.
    public var benignRejected: Int
    /// `benignRejected / benign` (0 without benign examples).
    public var benignFalsePositiveRate: Double

    /// Computes a fold's row.
    ///
    /// - Parameters:
    ///   - family: The held-out family; only attacks of this family count as its attacks.
    ///   - threshold: The fold model's threshold.
    ///   - examples: The fold's scored test set (the family's attacks plus held-back benign data;
    ///     attacks of other families are ignored).
    /// - Throws: `DetectionError.invalidInput` when there is no attack of `family`.
    public init(family: String, threshold: Float, examples: [ScoredExample]) throws {
      let attacks = examples.filter { $0.isAttack && $0.family == family }
      let benign = examples.filter { !$0.isAttack }
      guard !attacks.isEmpty else {
        throw DetectionError(
          .invalidInput, "leave-one-family-out fold '\(family)' has no attacks of that family")
      }
      self.family = family
      self.count = attacks.count
      self.benign = benign.count
      self.threshold = threshold
      self.truePositiveRate = Metrics.ratio(attacks.count(where: { $0.score >= threshold }), attacks.count)
      self.rocAUC = Metrics.mannWhitneyAUC(
        positiveScores: attacks.map(\.score), negativeScores: benign.map(\.score))
      self.benignRejected = benign.count(where: { $0.score >= threshold })
      self.benignFalsePositiveRate = Metrics.ratio(benignRejected, benign.count)
    }

    enum CodingKeys: String, CodingKey {
      case family, count, benign, threshold
      case truePositiveRate = "tpr"
      case rocAUC = "roc_auc"
      case benignRejected = "benign_rejected"
      case benignFalsePositiveRate = "benign_fpr"
    }
  }

  /// All leave-one-family-out folds and their macro summary.
  public struct LeaveOneFamilyOutSummary: Sendable, Equatable, Codable {
    /// One row per held-out family, sorted by family.
    public var rows: [LeaveOneFamilyOutRow]
    /// Mean of the rows' true-positive rates (each family weighs the same); 0 without rows.
    public var macroTPR: Double
    /// Mean of the rows' AUCs (rows without one are skipped); `nil` when none has one.
    public var macroAUC: Double?
    /// All folds' rejected benign examples over all folds' benign examples.
    public var pooledBenignFalsePositiveRate: Double

    /// Summarizes fold rows.
    public init(rows: [LeaveOneFamilyOutRow]) {
      self.rows = rows.sorted { $0.family < $1.family }
      self.macroTPR = rows.isEmpty ? 0 : rows.reduce(0) { $0 + $1.truePositiveRate } / Double(rows.count)
      let aucs = rows.compactMap(\.rocAUC)
      self.macroAUC = aucs.isEmpty ? nil : aucs.reduce(0, +) / Double(aucs.count)
      self.pooledBenignFalsePositiveRate = Metrics.ratio(
        rows.reduce(0) { $0 + $1.benignRejected }, rows.reduce(0) { $0 + $1.benign })
    }

    enum CodingKeys: String, CodingKey {
      case rows
      case macroTPR = "macro_tpr"
      case macroAUC = "macro_auc"
      case pooledBenignFalsePositiveRate = "pooled_benign_fpr"
    }
  }

  /// Metrics on a length-matched subset (see `Metrics.lengthMatched`), at the model's threshold.
  public struct LengthMatchedSummary: Sendable, Equatable, Codable {
    /// The subsampling seed.
    public var seed: UInt64
    /// Per-bin token ranges and counts.
    public var bins: [LengthMatchedSubset.Bin]
    /// Metrics of the subset.
    public var overall: BinaryMetrics
    /// Macro TPR over the subset's attack families; `nil` when the subset is empty.
    public var macroTPR: Double?

    /// Creates a summary from parts.
    public init(seed: UInt64, bins: [LengthMatchedSubset.Bin], overall: BinaryMetrics, macroTPR: Double?) {
      self.seed = seed
      self.bins = bins
      self.overall = overall
      self.macroTPR = macroTPR
    }

    /// Length-matches `examples` and measures the subset at `threshold`.
    ///
    /// - Parameters:
    ///   - examples: The pool to match (a test split, or all leave-one-family-out folds pooled).
    ///   - threshold: Reject when `score ≥ threshold`.
    ///   - bins: Number of log-spaced token-count bins.
    ///   - seed: Subsampling seed.
    /// - Throws: `DetectionError.invalidInput` when `bins < 1`.
    public init(_ examples: [ScoredExample], threshold: Float, bins: Int, seed: UInt64 = 0) throws {
      let subset = try Metrics.lengthMatched(examples, bins: bins, seed: seed)
      self.init(
        seed: seed, bins: subset.bins, overall: BinaryMetrics.compute(subset.examples, threshold: threshold),
        macroTPR: Metrics.macroTPR(subset.examples, threshold: threshold))
    }

    enum CodingKeys: String, CodingKey {
      case seed, bins, overall
      case macroTPR = "macro_tpr"
    }
  }

  /// One model's headline figures, for a side-by-side comparison of models.
  public struct ModelComparisonRow: Sendable, Equatable, Codable {
    /// Where the headline figures come from.
    public enum Basis: String, Sendable, Equatable, Codable {
      /// From the leave-one-family-out section (unseen families).
      case leaveOneFamilyOut = "leave_one_family_out"
      /// From the report's own examples (a test split).
      case testSet = "test_set"
    }

    /// The model's name (preset or bundle).
    public var model: String
    /// Which section the figures come from.
    public var basis: Basis
    /// Macro TPR over attack families at the model's threshold (calibrated to the target FPR).
    public var macroTPR: Double?
    /// ROC AUC (the mean fold AUC for leave-one-family-out).
    public var rocAUC: Double?
    /// Benign false-positive rate at the model's threshold.
    public var benignFalsePositiveRate: Double
    /// ROC AUC on the length-matched subset, when that section is present.
    public var lengthMatchedAUC: Double?

    /// Creates a row from parts.
    public init(
      model: String, basis: Basis, macroTPR: Double?, rocAUC: Double?, benignFalsePositiveRate: Double,
      lengthMatchedAUC: Double?
    ) {
      self.model = model
      self.basis = basis
      self.macroTPR = macroTPR
      self.rocAUC = rocAUC
      self.benignFalsePositiveRate = benignFalsePositiveRate
      self.lengthMatchedAUC = lengthMatchedAUC
    }

    /// Takes a model's headline figures from its report: leave-one-family-out when present
    /// (the acceptance figures), the report's own examples otherwise.
    public init(model: String, report: EvaluationReport) {
      if let lofo = report.leaveOneFamilyOut, !lofo.rows.isEmpty {
        self.init(
          model: model, basis: .leaveOneFamilyOut, macroTPR: lofo.macroTPR, rocAUC: lofo.macroAUC,
          benignFalsePositiveRate: lofo.pooledBenignFalsePositiveRate,
          lengthMatchedAUC: report.lengthMatched?.overall.rocAUC)
      } else {
        self.init(
          model: model, basis: .testSet, macroTPR: report.macroTPR, rocAUC: report.overall.rocAUC,
          benignFalsePositiveRate: report.overall.falsePositiveRate,
          lengthMatchedAUC: report.lengthMatched?.overall.rocAUC)
      }
    }

    enum CodingKeys: String, CodingKey {
      case model, basis
      case macroTPR = "macro_tpr"
      case rocAUC = "roc_auc"
      case benignFalsePositiveRate = "benign_fpr"
      case lengthMatchedAUC = "length_matched_auc"
    }
  }

  /// The model's identifier (bundle digest prefix or preset name).
  public var modelID: String
  /// The model's threshold: reject when `score ≥ threshold`.
  public var threshold: Float
  /// The benign false-positive rate the threshold was calibrated to, if known.
  public var targetFalsePositiveRate: Double?
  /// Metrics over all examples.
  public var overall: BinaryMetrics
  /// One row per attack family (its attacks only), sorted by name.
  public var attackFamilies: [GroupRow]
  /// One row per benign family (its benign examples only), sorted by name.
  public var benignFamilies: [GroupRow]
  /// One row per source (all its examples), sorted by name.
  public var sources: [GroupRow]
  /// Mean TPR over attack families at the model's threshold; `nil` without attacks.
  public var macroTPR: Double?
  /// Mean TPR over attack families at a threshold recalibrated on this report's own benign examples
  /// to `targetFalsePositiveRate` (what a perfectly calibrated threshold would reach).
  public var macroTPRAtTargetFPR: Double?
  /// Leave-one-family-out folds, when run.
  public var leaveOneFamilyOut: LeaveOneFamilyOutSummary?
  /// Length-matched metrics, when computed.
  public var lengthMatched: LengthMatchedSummary?
  /// Several models side by side, when compared.
  public var comparison: [ModelComparisonRow]?

  /// Computes the report's core sections from scored examples.
  ///
  /// - Parameters:
  ///   - modelID: The model's identifier.
  ///   - threshold: The model's threshold.
  ///   - examples: The scored test examples.
  ///   - targetFalsePositiveRate: The FPR the threshold was calibrated to (for
  ///     `macroTPRAtTargetFPR`); `nil` skips that figure.
  ///   - lengthMatchingBins: When given, also computes the length-matched section with this many bins.
  ///   - lengthMatchingSeed: The length-matching seed.
  /// - Throws: `DetectionError.invalidInput` for a bad target rate or bin count.
  /// - Complexity: O(n log n).
  public init(
    modelID: String, threshold: Float, examples: [ScoredExample], targetFalsePositiveRate: Double? = 0.01,
    lengthMatchingBins: Int? = nil, lengthMatchingSeed: UInt64 = 0
  ) throws {
    let benignScores = examples.filter { !$0.isAttack }.map(\.score)
    func rows(_ members: [ScoredExample], by key: (ScoredExample) -> String) -> [GroupRow] {
      Dictionary(grouping: members, by: key).sorted { $0.key < $1.key }.map {
        GroupRow(name: $0.key, members: $0.value, benignScores: benignScores, threshold: threshold)
      }
    }
    self.modelID = modelID
    self.threshold = threshold
    self.targetFalsePositiveRate = targetFalsePositiveRate
    self.overall = BinaryMetrics.compute(examples, threshold: threshold)
    self.attackFamilies = rows(examples.filter(\.isAttack), by: \.family)
    self.benignFamilies = rows(examples.filter { !$0.isAttack }, by: \.family)
    self.sources = rows(examples, by: \.source)
    self.macroTPR = Metrics.macroTPR(examples, threshold: threshold)
    if let target = targetFalsePositiveRate {
      guard target >= 0 else {
        throw DetectionError(.invalidInput, "target false-positive rate must be in [0, 1], got \(target)")
      }
      if !benignScores.isEmpty, examples.contains(where: \.isAttack) {
        self.macroTPRAtTargetFPR = try Metrics.macroTPRAtFPR(examples, target)
      }
    }
    // Matching needs both classes: a file of benign prompts only (a probe of false positives) has
    // no length-matched subset.
    if let bins = lengthMatchingBins, examples.contains(where: \.isAttack),
      examples.contains(where: { !$0.isAttack })
    {
      self.lengthMatched = try LengthMatchedSummary(
        examples, threshold: threshold, bins: bins, seed: lengthMatchingSeed)
    }
  }

  enum CodingKeys: String, CodingKey {
    case modelID = "model_id"
    case threshold
    case targetFalsePositiveRate = "target_fpr"
    case overall
    case attackFamilies = "attack_families"
    case benignFamilies = "benign_families"
    case sources
    case macroTPR = "macro_tpr"
    case macroTPRAtTargetFPR = "macro_tpr_at_target_fpr"
    case leaveOneFamilyOut = "leave_one_family_out"
    case lengthMatched = "length_matched"
    case comparison
  }
}
