import Foundation
import Geometry

/// Everything that decides what a trained detector is, as data: which feature blocks feed the
/// classifier, the feature network, the classifier and the calibration. Stored as JSON in every
/// model bundle. Named presets (`DetectorConfiguration.preset(named:)`) plus `key=value`
/// overrides (`setting(_:to:)`) make the command line's `--preset` and `--set`.
public struct DetectorConfiguration: Codable, Sendable, Equatable {
  /// The benign feature network (DESIGN §1: `Conv1D(32) → Conv1D(64) → Flatten → Dense(128) →
  /// Dense(C)`), trained on benign prompts to predict their topic.
  public struct FeatureNetwork: Codable, Sendable, Equatable {
    /// Token rows fed to the network (`[L, d]`, truncated or zero-padded after standardization).
    public var length: Int = 64
    /// Filters of the first convolution.
    public var filters1: Int = 32
    /// Filters of the second convolution.
    public var filters2: Int = 64
    /// Kernel width of both convolutions.
    public var kernelSize: Int = 3
    /// Width of the dense layer whose activations PromptLID measures.
    public var dense: Int = 128
    /// Maximum epochs.
    public var epochs: Int = 10
    /// Minibatch size.
    public var batchSize: Int = 64
    /// Adam learning rate.
    public var learningRate: Float = 0.001
    /// Early-stopping patience on the benign validation loss (0: none).
    public var patience: Int = 3
    /// Topic classes: `families` (benign families as classes) or `kmeans` (k-means topics of the
    /// mean-pooled benign training embeddings), or `auto` (k-means when families are fewer than 3
    /// or the largest holds more than half the benign training prompts).
    public var topics: String = "auto"
    /// Number of k-means topics.
    public var topicCount: Int = 8
    /// Curvature positions: `tokens` (conv outputs whose receptive field lies on real tokens) or
    /// `all` (every position of the padded sequence).
    public var curvatureSpan: String = "tokens"

    /// The default network.
    public init() {}
  }

  /// The classifier on the standardized features.
  public struct Classifier: Codable, Sendable, Equatable {
    /// `mlp` (hidden layers with batch-norm, ReLU, dropout) or `logistic` (one linear layer).
    public var kind: String = "mlp"
    /// Hidden layer widths of the MLP.
    public var hidden: [Int] = [256, 128]
    /// Dropout rate after each hidden layer.
    public var dropout: Float = 0.5
    /// Coupled L2 coefficient.
    public var l2: Float = 0.0001
    /// Adam learning rate.
    public var learningRate: Float = 0.001
    /// Maximum epochs.
    public var epochs: Int = 60
    /// Minibatch size.
    public var batchSize: Int = 64
    /// Early-stopping patience on the validation loss.
    public var patience: Int = 6
    /// Weight the two classes inversely to their frequency.
    public var balanceClasses: Bool = true
    /// Score fusion: the name of a one-column feature block (e.g. `supervised_cnn`) that does not
    /// feed the classifier but is fused with it: the score is
    /// `σ((z(classifier logit) + z(block feature)) / 2)`, each `z` standardized by its mean and
    /// deviation on the benign calibration prompts (`ScoreFusion`). Two detectors trained apart
    /// and averaged: the classifier cannot learn to lean on the block's (over-confident) training
    /// scores. `nil` (absent in older bundles): the classifier's probability is the score.
    public var fuse: String?
    /// How the two standardized scores of `fuse` combine: `mean` (`σ((z₁ + z₂)/2)`: each detector
    /// moves the score, and one's confident "benign" cancels the other's "attack") or `max`
    /// (`σ(max(z₁, z₂))`, each `z` scaled by its benign median and tail quantile: either detector
    /// alone can reject, the two share the calibrated FPR; `ScoreFusion`). `nil` (absent in older
    /// bundles): `mean`. `separate`: either detector rejects at its own threshold, the classifier
    /// at the calibrated target FPR as if there were no block (its decisions unchanged), the block
    /// at `fuseFalsePositiveRate` on the benign calibration prompts (`ScoreFusion`).
    public var fuseRule: String?
    /// Rule `separate`: the block's own false-positive budget on the benign calibration prompts,
    /// which its rejections add to the classifier's. `nil` (absent): a quarter of
    /// `targetFalsePositiveRate`.
    public var fuseFalsePositiveRate: Double?
    /// Classifiers trained on the same features from successive draws of the random stream (their
    /// own initial weights, minibatch order, dropout masks and early stopping), whose logits are
    /// averaged (`NetworkAverage`); the threshold is calibrated on the average. `nil` (absent in
    /// older bundles) or 1: one classifier, tensors `classifier.*`; with `m ≥ 2` member `i`'s
    /// tensors are `classifier.member<i>.*`.
    public var members: Int?
    /// Family balance within the attack class: each attack training row weighs `n_f^-p` with `n_f`
    /// the training attacks of its family, scaled so the attack rows' mean weight stays 1 (the
    /// class balance is unchanged); `0.5` is `1/√n`, `1` makes every family weigh the same. `nil`
    /// (absent in older bundles) or 0: every attack row weighs the same.
    public var familyBalance: Double?
    /// The same within the benign class, by benign family (source): each benign prompt's row
    /// weighs `n_f^-p`, scaled so those rows' mean weight stays 1 (rows of benign chunks weigh 1).
    /// `nil` (absent in older bundles) or 0: every benign row weighs the same.
    public var benignBalance: Double?

    /// The default classifier.
    public init() {}

    /// `fuseRule` as a `ScoreFusion.Rule` (`mean` when absent or unknown; `validate` refuses unknown).
    var fusionRule: ScoreFusion.Rule { fuseRule.flatMap(ScoreFusion.Rule.init(rawValue:)) ?? .mean }

    /// `members`, 1 when absent.
    public var memberCount: Int { members ?? 1 }
  }

  /// The supervised token-matrix CNN (`supervised_cnn` block, issue 6).
  public struct SupervisedCNN: Codable, Sendable, Equatable {
    /// Token rows per training crop and per inference window.
    public var crop: Int = 64
    /// Convolution filters.
    public var filters: Int = 64
    /// Convolution kernel width.
    public var kernelSize: Int = 3
    /// Training epochs.
    public var epochs: Int = 4
    /// Minibatch size.
    public var batchSize: Int = 32
    /// Adam learning rate.
    public var learningRate: Float = 0.001
    /// Coupled L2 coefficient.
    public var l2: Float = 0.0001
    /// Networks trained from independent seeds whose scores are averaged into the one feature
    /// (absent in older bundles: 1).
    public var ensemble: Int = 1
    /// With `ensemble ≥ 2`: member `m` trains only on the training groups of fold `m` (of
    /// `ensemble` folds by group), and each training prompt's feature is the score of the member
    /// that did not see it (out-of-fold), so the classifier learns from honest scores. Other
    /// prompts get the members' mean. Absent in older bundles: `false`.
    public var outOfFold: Bool = false
    /// Kernel width of each ensemble member, cycled (`[2, 3, 5]`: member `i` uses entry
    /// `i mod 3`); empty: every member uses `kernelSize`. Absent in older bundles: empty.
    public var memberKernelSizes: [Int] = []
    /// How a network pools over positions: `meanAndMax` (means and maxima of the convolution's
    /// filters, then `Dense(2f → 2)`) or `logSumExp` (a `Conv1D(f → 2, 1)` logit per position,
    /// pooled by log-sum-exp: a smooth maximum, so one attack-like span can decide the prompt).
    /// Absent in older bundles: `meanAndMax`.
    public var pooling: String = "meanAndMax"
    /// Which token rows the networks read: `encoder` (the encoder's last hidden state) or
    /// `lexical` (the encoder's input embedding of each token, without position or context:
    /// `BertEncoder.lexicalRows`), so that a phrase reads the same wherever it sits. Absent in
    /// older bundles: `encoder`.
    public var rows: String = "encoder"

    /// The kernel width of ensemble member `member`.
    public func kernelSize(member: Int) -> Int {
      memberKernelSizes.isEmpty ? kernelSize : memberKernelSizes[member % memberKernelSizes.count]
    }

    /// The default settings.
    public init() {}

    enum CodingKeys: String, CodingKey {
      case crop, filters, kernelSize, epochs, batchSize, learningRate, l2, ensemble, outOfFold
      case memberKernelSizes, pooling, rows
    }

    /// Encodes the settings; fields added after the first release are written only when they
    /// differ from their defaults, so a configuration without them keeps its stored JSON (and a
    /// retrained bundle its bytes).
    public func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(crop, forKey: .crop)
      try container.encode(filters, forKey: .filters)
      try container.encode(kernelSize, forKey: .kernelSize)
      try container.encode(epochs, forKey: .epochs)
      try container.encode(batchSize, forKey: .batchSize)
      try container.encode(learningRate, forKey: .learningRate)
      try container.encode(l2, forKey: .l2)
      let everyField = encoder.userInfo[DetectorConfiguration.everyFieldKey] as? Bool == true
      if everyField || ensemble != 1 { try container.encode(ensemble, forKey: .ensemble) }
      if everyField || outOfFold { try container.encode(outOfFold, forKey: .outOfFold) }
      if everyField || !memberKernelSizes.isEmpty {
        try container.encode(memberKernelSizes, forKey: .memberKernelSizes)
      }
      if everyField || pooling != "meanAndMax" { try container.encode(pooling, forKey: .pooling) }
      if everyField || rows != "encoder" { try container.encode(rows, forKey: .rows) }
    }

    /// Decodes stored settings; fields added after the first release fall back to their defaults.
    public init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      crop = try container.decode(Int.self, forKey: .crop)
      filters = try container.decode(Int.self, forKey: .filters)
      kernelSize = try container.decode(Int.self, forKey: .kernelSize)
      epochs = try container.decode(Int.self, forKey: .epochs)
      batchSize = try container.decode(Int.self, forKey: .batchSize)
      learningRate = try container.decode(Float.self, forKey: .learningRate)
      l2 = try container.decode(Float.self, forKey: .l2)
      ensemble = try container.decodeIfPresent(Int.self, forKey: .ensemble) ?? 1
      outOfFold = try container.decodeIfPresent(Bool.self, forKey: .outOfFold) ?? false
      memberKernelSizes = try container.decodeIfPresent([Int].self, forKey: .memberKernelSizes) ?? []
      pooling = try container.decodeIfPresent(String.self, forKey: .pooling) ?? "meanAndMax"
      rows = try container.decodeIfPresent(String.self, forKey: .rows) ?? "encoder"
    }
  }

  /// Fine-tuning of the encoder's top layers before the detector is trained (issue 6): the
  /// detector then reads the rows of the tuned encoder, whose top layers the bundle stores.
  public struct EncoderTuning: Codable, Sendable, Equatable {
    /// Top transformer layers trained; the layers below stay frozen.
    public var layers: Int = 1
    /// Passes over the training split.
    public var epochs: Int = 3
    /// Rows per training crop (a random window of a longer prompt's frozen states).
    public var crop: Int = 128
    /// Examples per step.
    public var batchSize: Int = 32
    /// Adam step size of the transformer layers.
    public var learningRate: Float = 3e-5
    /// Adam step size of the mean-pooled linear head used while tuning (not stored).
    public var headLearningRate: Float = 1e-3

    /// The default settings.
    public init() {}
  }

  /// Chunk scoring: besides the whole prompt (its first `maxWindows` windows), every chunk of
  /// `length` consecutive word pieces of a longer prompt, `stride` pieces apart and the last one
  /// ending at the prompt's end, is encoded on its own as `[CLS] chunk [SEP]` and scored by the
  /// same model; the prompt's score is the largest of these scores (chunk scores first put on the
  /// whole-prompt scale with `calibration = separate`). Ordinary text around an attack then cannot
  /// dilute it, and no part of a long prompt goes unread. Training itself reads whole prompts.
  public struct Chunking: Codable, Sendable, Equatable {
    /// Word pieces per chunk (without `[CLS]`/`[SEP]`); prompts of at most this many pieces are
    /// scored whole only.
    public var length: Int = 128
    /// Word pieces from one chunk's start to the next's.
    public var stride: Int = 96
    /// Whether the chunks of the benign training prompts join the classifier's training rows as
    /// benign examples, so that the fragments of long ordinary texts that chunk scoring reads are
    /// known benign text (attack prompts' chunks are not added: a fragment of an attack need not
    /// be one). Measured and off by default: it lowers the benign FPR on long texts a little and
    /// costs more attacks than it saves (docs/evaluation.md, "Chunk scoring").
    public var benignChunksInTraining: Bool = false
    /// When positive, the opening of every attack training prompt longer than this many word
    /// pieces (its first `attackOpeningsInTraining` pieces, encoded alone as
    /// `[CLS] opening [SEP]`) joins the classifier's training rows as one more attack example, so
    /// that a jailbreak's set-up is known as an attack at the length of a short prompt, not only
    /// inside a long template. `0` (the default) adds nothing. Measured and off by default
    /// (docs/evaluation.md, "Attack openings in training").
    public var attackOpeningsInTraining: Int = 0
    /// How the threshold accounts for chunks: `joint` (one threshold on the larger of the whole
    /// and chunk scores of the calibration prompts) or `separate` (the threshold from the
    /// calibration prompts' whole scores alone, and a chunk threshold `t_c` from the largest chunk
    /// score of every benign training and calibration prompt that has chunks; chunk scores are
    /// then mapped by `σ(logit(c) + logit(t) − logit(t_c))`, so `t_c` lands on `t`), or `shared`
    /// (as `separate`, but the target is the budget of the whole decision: the share of the benign
    /// training and calibration prompts that a chunk or a segment already flags at `t_c`/`t_s` is
    /// taken from the whole-prompt threshold's budget, so that `t` is calibrated to the target
    /// minus that share; measured, not used by a preset).
    public var calibration: String = "joint"

    /// The ways `calibration` may be set (stored as the raw value, so bundles keep their JSON).
    public enum Calibration: String, CaseIterable, Sendable {
      case joint, separate, shared
    }

    /// `calibration` as a `Calibration` (`joint` when unknown; `validate` refuses unknown).
    public var calibrationRule: Calibration { Calibration(rawValue: calibration) ?? .joint }

    /// Whether chunk and segment scores get thresholds of their own (`separate` or `shared`).
    public var hasOwnPartThresholds: Bool { calibrationRule != .joint }
    /// Whether each line and sentence of a prompt with several (`PromptSegments`) is also encoded
    /// and scored on its own, so that an instruction appended to an ordinary task is read as
    /// what it is. Segment scores have their own threshold `t_s`: the largest segment score of
    /// the benign training and calibration prompts (a prompt without segments counts 0) exceeds
    /// it for at most `segmentFalsePositiveRate` of them, and it is never below the whole-prompt
    /// threshold `t`; they are mapped by `σ(logit(s) + logit(t) − logit(t_s))` like chunk scores
    /// under `separate`.
    public var segments: Bool = false
    /// At most this many segments per prompt (the first half and the last half of them; chunks
    /// still read the rest).
    public var maxSegments: Int = 64
    /// The benign false-positive budget of segment scores (absent: a quarter of the target).
    public var segmentFalsePositiveRate: Double?

    /// The default settings.
    public init() {}

    enum CodingKeys: String, CodingKey {
      case length, stride, benignChunksInTraining, calibration, segments, maxSegments
      case segmentFalsePositiveRate, attackOpeningsInTraining
    }

    /// Encodes the settings; the segment fields are written only when they differ from their
    /// defaults, so a configuration without segments keeps its stored JSON (and a retrained
    /// bundle its bytes).
    public func encode(to encoder: any Encoder) throws {
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(length, forKey: .length)
      try container.encode(stride, forKey: .stride)
      try container.encode(benignChunksInTraining, forKey: .benignChunksInTraining)
      try container.encode(calibration, forKey: .calibration)
      let everyField = encoder.userInfo[DetectorConfiguration.everyFieldKey] as? Bool == true
      if everyField || segments { try container.encode(segments, forKey: .segments) }
      if everyField || maxSegments != 64 { try container.encode(maxSegments, forKey: .maxSegments) }
      try container.encodeIfPresent(segmentFalsePositiveRate, forKey: .segmentFalsePositiveRate)
      if everyField || attackOpeningsInTraining != 0 {
        try container.encode(attackOpeningsInTraining, forKey: .attackOpeningsInTraining)
      }
    }

    /// Decodes stored settings; a missing field takes its default.
    public init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: CodingKeys.self)
      let defaults = Chunking()
      length = try container.decodeIfPresent(Int.self, forKey: .length) ?? defaults.length
      stride = try container.decodeIfPresent(Int.self, forKey: .stride) ?? defaults.stride
      benignChunksInTraining =
        try container.decodeIfPresent(Bool.self, forKey: .benignChunksInTraining)
        ?? defaults.benignChunksInTraining
      calibration = try container.decodeIfPresent(String.self, forKey: .calibration) ?? defaults.calibration
      segments = try container.decodeIfPresent(Bool.self, forKey: .segments) ?? defaults.segments
      maxSegments = try container.decodeIfPresent(Int.self, forKey: .maxSegments) ?? defaults.maxSegments
      segmentFalsePositiveRate = try container.decodeIfPresent(Double.self, forKey: .segmentFalsePositiveRate)
      attackOpeningsInTraining =
        try container.decodeIfPresent(Int.self, forKey: .attackOpeningsInTraining)
        ?? defaults.attackOpeningsInTraining
    }

    /// Where the chunks of a prompt of `pieces` word pieces start: `0, stride, 2·stride, …` while
    /// a chunk ends before the prompt does, then `pieces − length`; empty when `pieces ≤ length`.
    public func starts(pieces: Int) -> [Int] {
      guard pieces > length, length > 0, stride > 0 else { return [] }
      var starts: [Int] = []
      var start = 0
      while start + length < pieces {
        starts.append(start)
        start += stride
      }
      starts.append(pieces - length)
      return starts
    }
  }

  /// Feature blocks feeding the classifier, by registry name (`FeatureBlockRegistry`).
  public var features: [String]
  /// The feature network (used when a block needs it).
  public var featureNetwork = FeatureNetwork()
  /// The classifier.
  public var classifier = Classifier()
  /// Neighbours for PromptLID.
  public var lidK: Int = 32
  /// LID estimator: `methodOfMoments` or `maximumLikelihood`.
  public var lidEstimator: String = LIDEstimator.methodOfMoments.rawValue
  /// Benign false-positive rate the threshold is calibrated to.
  public var targetFalsePositiveRate: Double = 0.01
  /// Settings of the `supervised_cnn` block (absent in older bundles: defaults apply).
  public var supervisedCNN: SupervisedCNN?
  /// Fine-tuning of the encoder's top layers (absent: the encoder is used frozen).
  public var encoderTuning: EncoderTuning?
  /// Chunk scoring (absent: the whole prompt's score decides).
  public var chunking: Chunking?
  /// The benign false-positive budget of segment scores: `chunking.segmentFalsePositiveRate`, or
  /// a quarter of the target.
  public var segmentBudget: Double {
    chunking?.segmentFalsePositiveRate ?? targetFalsePositiveRate / 4
  }
  /// Seed of every random choice.
  public var seed: UInt64 = 42
  /// Whether `harmful` records are positives in training (default: left out of training).
  public var harmfulIsPositive: Bool = false
  /// Encoder windows used per prompt (0: all). The reference network reads only the first `length`
  /// rows, which the first window already holds.
  public var maxWindows: Int = 1

  /// A configuration with the given feature blocks and defaults elsewhere.
  public init(features: [String]) {
    self.features = features
  }

  /// Encoder `userInfo` key: when `true`, settings write every field, defaults included.
  static let everyFieldKey: CodingUserInfoKey = {
    guard let key = CodingUserInfoKey(rawValue: "curvalid.everyField") else {
      preconditionFailure("a constant CodingUserInfoKey is always valid")
    }
    return key
  }()

  /// The names of the presets.
  public static let presetNames = [
    "reference", "embedding-logistic", "supervised-cnn", "embedding-geometry", "token-fusion",
    "phrase-fusion", "encoder-tuned", "whole-prompt", "chunked",
    "default",
  ]

  /// The named preset.
  ///
  /// - `reference`: DESIGN §1 exactly: PromptLID on the dense activation, TextCurv means on both
  ///   convolution outputs, MLP 256 → 128 → 2, threshold at 1% benign FPR.
  /// - `embedding-logistic`: logistic regression on the mean-pooled token embedding (baseline).
  /// - `supervised-cnn`: the supervised token-matrix CNN's window score with the mean-pooled
  ///   embedding and the CurvaLID geometry, logistic regression (issue 6's first default).
  /// - `embedding-geometry`: the reference MLP on the mean-pooled embedding, the CurvaLID geometry
  ///   and the log token count (the default until 2026-11-25, model `00a8f71f`).
  /// - `token-fusion`: `embedding-geometry` fused with a token-level detector on the encoder's
  ///   output rows: the supervised CNN with a per-position attack logit pooled by log-sum-exp
  ///   (`kernelSize` 1, 256-token crops, 6 epochs), averaged with the MLP after
  ///   benign-calibration standardization (`classifier.fuse`). Measured, not shipped.
  /// - `phrase-fusion`: `default` fused by the `max` rule with a phrase detector: the log-sum-exp
  ///   token CNN with `kernelSize` 3 on the encoder's context-free token rows (`rows=lexical`), so
  ///   that an instruction appended to a long benign task reads the same as on its own. Better on
  ///   the test split, worse on unseen families; measured, not shipped (docs/evaluation.md).
  /// - `encoder-tuned`: `default` on an encoder whose top layer is first fine-tuned on the
  ///   detection objective (`encoderTuning`: 1 layer, 3 epochs of 128-row crops, a mean-pooled
  ///   linear head, class- and family-balanced loss); the bundle stores the tuned layer.
  /// - `whole-prompt`: `default` without chunk scoring: the whole prompt's first window decides
  ///   (the shipped default until 2026-12-03, model `dcca546f`).
  /// - `chunked`: `embedding-geometry` plus the mean of the last 32 token rows (`tail_embedding`)
  ///   under the same MLP, scored on the whole prompt and on chunks of 128 word pieces every 96
  ///   with separately calibrated chunk scores (`chunking`; the shipped default until 2026-12-04,
  ///   model `08f38554`).
  /// - `default`: `chunked`, and each line and sentence of a prompt with several is also scored
  ///   alone above its own threshold (`Chunking.segments`; issue 6, docs/evaluation.md). Averaging
  ///   several classifiers (`--set classifier.members=3`) was measured and not adopted.
  /// - Throws: `DetectionError(.invalidInput)` for an unknown name.
  public static func preset(named name: String) throws(DetectionError) -> DetectorConfiguration {
    switch name {
    case "reference":
      return DetectorConfiguration(features: ["prompt_lid", "curvature_conv1", "curvature_conv2"])
    case "embedding-logistic":
      var configuration = DetectorConfiguration(features: ["mean_embedding"])
      configuration.classifier.kind = "logistic"
      configuration.classifier.l2 = 0.0001
      configuration.classifier.epochs = 100
      configuration.classifier.patience = 8
      configuration.classifier.learningRate = 0.01
      return configuration
    case "embedding-geometry":
      return DetectorConfiguration(
        features: ["mean_embedding", "prompt_lid", "curvature_conv1", "curvature_conv2", "log_tokens"])
    case "token-fusion":
      return fusedTokenCNN(
        features: ["mean_embedding", "prompt_lid", "curvature_conv1", "curvature_conv2", "log_tokens"],
        kernelSize: 1, rows: "encoder", fuseRule: nil)
    case "chunked", "default":
      var configuration = DetectorConfiguration(features: defaultFeatures)
      var chunking = Chunking()
      chunking.calibration = Chunking.Calibration.separate.rawValue
      chunking.segments = name == "default"
      configuration.chunking = chunking
      return configuration
    case "phrase-fusion":
      return fusedTokenCNN(features: defaultFeatures, kernelSize: 3, rows: "lexical", fuseRule: "max")
    case "whole-prompt":
      return DetectorConfiguration(features: defaultFeatures)
    case "encoder-tuned":
      var configuration = DetectorConfiguration(features: defaultFeatures)
      configuration.encoderTuning = EncoderTuning()
      return configuration
    case "supervised-cnn":
      var configuration = DetectorConfiguration(
        features: ["supervised_cnn", "mean_embedding", "prompt_lid", "curvature_conv1", "curvature_conv2"])
      configuration.supervisedCNN = SupervisedCNN()
      configuration.classifier.kind = "logistic"
      configuration.classifier.epochs = 100
      configuration.classifier.patience = 8
      configuration.classifier.learningRate = 0.01
      return configuration
    default:
      throw DetectionError(
        .invalidInput,
        "unknown preset '\(name)' (presets: \(presetNames.joined(separator: ", ")))")
    }
  }

  /// The blocks of the `default` preset.
  private static let defaultFeatures = [
    "mean_embedding", "tail_embedding", "prompt_lid", "curvature_conv1", "curvature_conv2", "log_tokens",
  ]

  /// The reference MLP on `features`, fused (`classifier.fuse`) with a `supervised_cnn` of
  /// `logSumExp` pooling over 256-token crops, trained for 6 epochs.
  private static func fusedTokenCNN(features: [String], kernelSize: Int, rows: String, fuseRule: String?)
    -> DetectorConfiguration
  {
    var configuration = DetectorConfiguration(features: features + ["supervised_cnn"])
    var cnn = SupervisedCNN()
    cnn.crop = 256
    cnn.kernelSize = kernelSize
    cnn.epochs = 6
    cnn.pooling = "logSumExp"
    cnn.rows = rows
    configuration.supervisedCNN = cnn
    configuration.classifier.fuse = "supervised_cnn"
    configuration.classifier.fuseRule = fuseRule
    return configuration
  }

  /// Applies one `key=value` override; keys are the JSON paths of the configuration
  /// (`lidK`, `featureNetwork.length`, `classifier.hidden=64,32`, `features=prompt_lid,…`).
  ///
  /// - Throws: `DetectionError(.invalidInput)` for an unknown key, a value of the wrong type or a
  ///   result that `validate()` refuses.
  public mutating func apply(_ assignment: String) throws(DetectionError) {
    try apply([assignment])
  }

  /// Applies several overrides in order and validates the result once, so that settings that
  /// bound each other may be given in any order (`chunking.stride=192 chunking.length=256`).
  ///
  /// - Throws: `DetectionError(.invalidInput)` for an unknown key, a value of the wrong type or a
  ///   result that `validate()` refuses; the configuration is then unchanged.
  public mutating func apply(_ assignments: [String]) throws(DetectionError) {
    var updated = self
    for assignment in assignments { try updated.assign(assignment) }
    try updated.validate()
    // One classifier is stored as no `members` field, so `--set classifier.members=1` gives the
    // configuration (and the bundle bytes) of one trained before the field existed.
    if updated.classifier.members == 1 { updated.classifier.members = nil }
    if updated.classifier.familyBalance == 0 { updated.classifier.familyBalance = nil }
    if updated.classifier.benignBalance == 0 { updated.classifier.benignBalance = nil }
    self = updated
  }

  /// One override without validation.
  private mutating func assign(_ assignment: String) throws(DetectionError) {
    guard let equals = assignment.firstIndex(of: "=") else {
      throw DetectionError(.invalidInput, "override '\(assignment)' is not key=value")
    }
    let key = String(assignment[..<equals]).trimmingCharacters(in: .whitespaces)
    let value = String(assignment[assignment.index(after: equals)...])
    let path = key.split(separator: ".").map(String.init)
    let data: Data
    do {
      // Every field, so that overrides may name fields left out of stored JSON at their defaults.
      let encoder = JSONEncoder()
      encoder.userInfo[Self.everyFieldKey] = true
      data = try encoder.encode(self)
    } catch {
      throw DetectionError(.internalError, "cannot encode the configuration: \(error)")
    }
    guard var root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw DetectionError(.internalError, "cannot re-read the configuration")
    }
    if let head = path.first, path.count > 1, root[head] == nil, let section = Self.optionalSections[head] {
      // `encoderTuning.epochs=2` on a configuration without tuning turns tuning on with defaults.
      let encoder = JSONEncoder()
      encoder.userInfo[Self.everyFieldKey] = true
      if let data = try? encoder.encode(section),
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
      {
        root[head] = object[head]
      }
    }
    try Self.set(&root, path: path[...], value: value, key: key)
    let updated: DetectorConfiguration
    do {
      let data = try JSONSerialization.data(withJSONObject: root)
      updated = try JSONDecoder().decode(DetectorConfiguration.self, from: data)
    } catch {
      throw DetectionError(.invalidInput, "override '\(assignment)': wrong value type for \(key)")
    }
    self = updated
  }

  /// Optional fields, which stored JSON leaves out while they are `nil`: overrides may still set them.
  static let optionalKeys: Set<String> = [
    "classifier.fuse", "classifier.fuseRule", "classifier.fuseFalsePositiveRate", "classifier.members",
    "classifier.familyBalance", "classifier.benignBalance",
    "chunking.segmentFalsePositiveRate",
  ]

  /// Optional sections that an override of one of their fields creates with default settings.
  static let optionalSections: [String: DetectorConfiguration] = {
    var tuned = DetectorConfiguration(features: [])
    tuned.encoderTuning = EncoderTuning()
    var chunked = DetectorConfiguration(features: [])
    chunked.chunking = Chunking()
    return ["encoderTuning": tuned, "chunking": chunked]
  }()

  private static func set(
    _ object: inout [String: Any], path: ArraySlice<String>, value: String, key: String
  ) throws(DetectionError) {
    guard let head = path.first, let current = object[head] ?? (optionalKeys.contains(key) ? NSNull() : nil)
    else {
      throw DetectionError(.invalidInput, "unknown configuration key '\(key)'")
    }
    if path.count > 1 {
      guard var nested = current as? [String: Any] else {
        throw DetectionError(.invalidInput, "unknown configuration key '\(key)'")
      }
      try set(&nested, path: path.dropFirst(), value: value, key: key)
      object[head] = nested
      return
    }
    if current is [Any] {
      let parts = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
      object[head] = parts.map(scalar)
    } else if current is [String: Any] {
      throw DetectionError(.invalidInput, "configuration key '\(key)' is a section; set one of its fields")
    } else {
      object[head] = scalar(value)
    }
  }

  /// A command-line value as a JSON scalar: a number or boolean when it reads as one, else text.
  private static func scalar(_ text: String) -> Any {
    if let flag = Bool(text) { return flag }
    if let number = Double(text) { return number }
    return text
  }

  /// Checks ranges and names.
  ///
  /// - Throws: `DetectionError(.invalidInput)` naming the first bad setting.
  public func validate() throws(DetectionError) {
    func require(_ condition: Bool, _ message: String) throws(DetectionError) {
      if !condition { throw DetectionError(.invalidInput, "configuration: \(message)") }
    }
    try require(!features.isEmpty, "features must name at least one block")
    for name in features {
      try require(
        FeatureBlockRegistry.names.contains(name),
        "unknown feature block '\(name)' (blocks: \(FeatureBlockRegistry.names.joined(separator: ", ")))")
    }
    try require(Set(features).count == features.count, "a feature block is named twice")
    let network = featureNetwork
    try require(network.kernelSize >= 1, "featureNetwork.kernelSize must be ≥ 1")
    try require(
      network.length >= 2 * network.kernelSize, "featureNetwork.length must be ≥ 2 × kernelSize")
    try require(
      network.filters1 > 0 && network.filters2 > 0 && network.dense > 1, "featureNetwork widths must be > 0")
    try require(network.epochs >= 1 && network.batchSize >= 1, "featureNetwork epochs and batchSize ≥ 1")
    try require(network.learningRate > 0, "featureNetwork.learningRate must be > 0")
    try require(["auto", "families", "kmeans"].contains(network.topics), "topics: auto, families or kmeans")
    try require(network.topicCount >= 2, "featureNetwork.topicCount must be ≥ 2")
    try require(["tokens", "all"].contains(network.curvatureSpan), "curvatureSpan: tokens or all")
    try require(["mlp", "logistic"].contains(classifier.kind), "classifier.kind: mlp or logistic")
    try require(classifier.hidden.allSatisfy { $0 > 0 }, "classifier.hidden widths must be > 0")
    try require(classifier.dropout >= 0 && classifier.dropout < 1, "classifier.dropout in [0, 1)")
    try require(classifier.l2 >= 0 && classifier.learningRate > 0, "classifier l2 ≥ 0, learningRate > 0")
    try require(classifier.epochs >= 1 && classifier.batchSize >= 1, "classifier epochs and batchSize ≥ 1")
    try require((1...16).contains(classifier.memberCount), "classifier.members in 1…16")
    if let balance = classifier.familyBalance {
      try require(balance >= 0 && balance <= 1, "classifier.familyBalance in [0, 1]")
    }
    if let balance = classifier.benignBalance {
      try require(balance >= 0 && balance <= 1, "classifier.benignBalance in [0, 1]")
    }
    if let fuse = classifier.fuse {
      try require(features.contains(fuse), "classifier.fuse '\(fuse)' is not one of the features")
      try require(features.count >= 2, "classifier.fuse needs another feature block for the classifier")
    }
    if let rule = classifier.fuseRule {
      try require(ScoreFusion.Rule(rawValue: rule) != nil, "classifier.fuseRule: mean, max or separate")
      try require(classifier.fuse != nil, "classifier.fuseRule needs classifier.fuse")
    }
    if let rate = classifier.fuseFalsePositiveRate {
      try require(rate >= 0 && rate < 1, "classifier.fuseFalsePositiveRate in [0, 1)")
      try require(
        classifier.fusionRule == .separate,
        "classifier.fuseFalsePositiveRate needs classifier.fuseRule=separate")
    }
    try require(lidK >= 2, "lidK must be ≥ 2")
    try require(
      LIDEstimator(rawValue: lidEstimator) != nil, "lidEstimator: methodOfMoments or maximumLikelihood")
    try require(
      targetFalsePositiveRate >= 0 && targetFalsePositiveRate < 1, "targetFalsePositiveRate in [0, 1)")
    try require(maxWindows >= 0, "maxWindows must be ≥ 0")
    if let tuning = encoderTuning {
      try require(tuning.layers >= 1 && tuning.layers <= 24, "encoderTuning.layers must lie in 1…24")
      try require(
        tuning.epochs >= 1 && tuning.crop >= 1 && tuning.batchSize >= 1, "encoderTuning sizes must be ≥ 1")
      try require(
        tuning.learningRate > 0 && tuning.headLearningRate > 0, "encoderTuning learning rates must be > 0")
      // Tuned rows are computed per encoder window from cached states; one window keeps that exact.
      try require(maxWindows == 1, "encoderTuning needs maxWindows=1 (the first encoder window)")
    }
    if let chunking {
      try require(
        chunking.length >= 8 && chunking.length <= 510, "chunking.length must lie in 8…510 word pieces")
      try require(
        chunking.stride >= 1 && chunking.stride <= chunking.length, "chunking.stride must lie in 1…length")
      try require(
        Chunking.Calibration(rawValue: chunking.calibration) != nil,
        "chunking.calibration: joint, separate or shared")
      try require(
        chunking.maxSegments >= 2 && chunking.maxSegments <= 1024, "chunking.maxSegments must lie in 2…1024")
      try require(
        chunking.attackOpeningsInTraining == 0
          || (chunking.attackOpeningsInTraining >= 8 && chunking.attackOpeningsInTraining <= 510),
        "chunking.attackOpeningsInTraining must be 0 (off) or lie in 8…510 word pieces")
      if let rate = chunking.segmentFalsePositiveRate {
        try require(rate > 0 && rate < 1, "chunking.segmentFalsePositiveRate in (0, 1)")
      }
      try require(
        !chunking.segments || chunking.hasOwnPartThresholds,
        "chunking.segments needs chunking.calibration=separate or shared")
      try require(
        chunking.calibrationRule != .shared || classifier.fusionRule != .separate,
        "chunking.calibration=shared cannot be combined with classifier.fuseRule=separate "
          + "(that rule fixes the whole-prompt threshold first)")
    }
    if let cnn = supervisedCNN {
      try require(
        cnn.kernelSize >= 1 && cnn.crop >= cnn.kernelSize, "supervisedCNN.crop must be ≥ kernelSize ≥ 1")
      try require(
        cnn.filters >= 1 && cnn.epochs >= 1 && cnn.batchSize >= 1, "supervisedCNN sizes must be ≥ 1")
      try require(cnn.learningRate > 0 && cnn.l2 >= 0, "supervisedCNN learningRate > 0, l2 ≥ 0")
      try require(cnn.ensemble >= 1 && cnn.ensemble <= 16, "supervisedCNN.ensemble in 1…16")
      try require(!cnn.outOfFold || cnn.ensemble >= 2, "supervisedCNN.outOfFold needs ensemble ≥ 2")
      try require(
        cnn.memberKernelSizes.allSatisfy { $0 >= 1 && $0 <= cnn.crop },
        "supervisedCNN.memberKernelSizes must lie in 1…crop")
      try require(
        ["meanAndMax", "logSumExp"].contains(cnn.pooling), "supervisedCNN.pooling: meanAndMax or logSumExp")
      try require(["encoder", "lexical"].contains(cnn.rows), "supervisedCNN.rows: encoder or lexical")
    }
  }

  /// The configuration as sorted, compact JSON (stored in bundles).
  public func json() -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let data = try? encoder.encode(self) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
  }

  /// Parses a configuration from JSON.
  ///
  /// - Throws: `DetectionError(.invalidBundle)` when the JSON does not describe a configuration.
  public static func fromJSON(_ text: String) throws(DetectionError) -> DetectorConfiguration {
    do {
      return try JSONDecoder().decode(DetectorConfiguration.self, from: Data(text.utf8))
    } catch {
      throw DetectionError(.invalidBundle, "the stored configuration is not valid: \(error)")
    }
  }

  /// The LID estimator.
  var estimator: LIDEstimator { LIDEstimator(rawValue: lidEstimator) ?? .methodOfMoments }
}
