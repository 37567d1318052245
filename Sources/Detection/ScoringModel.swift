import Embeddings
import Foundation
import Geometry
import LinearAlgebra
import NeuralNetwork

/// The classifier on the standardized features: an MLP (`Dense → BatchNorm → ReLU → Dropout` per
/// hidden layer, then `Dense(2)`) or logistic regression (`Dense(2)`), softmax output.
public struct ClassifierModel: Sendable {
  /// The architecture.
  public let settings: DetectorConfiguration.Classifier
  /// Feature width.
  public let inputWidth: Int
  /// The trained tensors (names `classifier.*`).
  public let tensors: [NamedTensor]

  /// A freshly initialised classifier: logits `[batch, 2]` from features `[batch, inputWidth]`.
  /// With `settings.members = m ≥ 2`: `m` members (`member(_:inputWidth:prefix:random:)`, one per
  /// `memberPrefixes`, initialised in that order from `random`) whose logits are averaged.
  static func architecture(
    _ settings: DetectorConfiguration.Classifier, inputWidth: Int, random: inout NetworkRandom
  ) -> Sequential {
    let prefixes = memberPrefixes(settings)
    let members = prefixes.map { member(settings, inputWidth: inputWidth, prefix: $0, random: &random) }
    return members.count == 1 ? members[0] : Sequential([NetworkAverage(members)])
  }

  /// The tensor-name prefix of each member: `classifier` for a single classifier, else
  /// `classifier.member1` … `classifier.member<m>`.
  static func memberPrefixes(_ settings: DetectorConfiguration.Classifier) -> [String] {
    let count = settings.memberCount
    return count > 1 ? (1...count).map { "classifier.member\($0)" } : ["classifier"]
  }

  /// One classifier, its tensors named `<prefix>.dense1` … `<prefix>.output`: logits `[batch, 2]`
  /// from features `[batch, inputWidth]`.
  static func member(
    _ settings: DetectorConfiguration.Classifier, inputWidth: Int, prefix: String, random: inout NetworkRandom
  ) -> Sequential {
    guard settings.kind == "mlp" else {
      return Sequential([
        Dense(name: "\(prefix).output", inputFeatures: inputWidth, outputFeatures: 2, random: &random)
      ])
    }
    var layers: [any Layer] = []
    var width = inputWidth
    for (index, hidden) in settings.hidden.enumerated() {
      layers.append(
        Dense(
          name: "\(prefix).dense\(index + 1)", inputFeatures: width, outputFeatures: hidden, random: &random))
      layers.append(BatchNorm(name: "\(prefix).bn\(index + 1)", features: hidden))
      layers.append(ReLU())
      if settings.dropout > 0 { layers.append(Dropout(rate: settings.dropout, random: &random)) }
      width = hidden
    }
    layers.append(Dense(name: "\(prefix).output", inputFeatures: width, outputFeatures: 2, random: &random))
    return Sequential(layers)
  }

  /// A classifier holding the trained weights.
  func makeNetwork() throws(DetectionError) -> Sequential {
    var random = NetworkRandom(seed: 0)
    let network = Self.architecture(settings, inputWidth: inputWidth, random: &random)
    do {
      try network.importTensors(tensors)
    } catch {
      throw DetectionError(.invalidBundle, "classifier: \(error.message)")
    }
    return network
  }
}

/// What the model concluded about one prompt, before the threshold.
public struct PromptEvaluation: Sendable {
  /// Probability of "adversarial".
  public var score: Float
  /// The wire-named features.
  public var features: [Decision.Feature]
  /// Token rows of the whole prompt.
  public var tokens: Int
  /// With `explain`: token positions (into the kept rows) with their curvature contribution,
  /// largest first.
  public var curvaturePositions: [(position: Int, value: Float)]
  /// With `explain`: distances to the nearest benign reference prompts, ascending.
  public var nearestBenignDistances: [Float]
}

/// Score fusion (`DetectorConfiguration.Classifier.fuse`): a one-column block kept out of the
/// classifier and combined with it after both are standardized on benign calibration prompts.
///
/// With `z₁ = (ℓ − c₁) / s₁` and `z₂ = (x − c₂) / s₂`, where `ℓ = logit(attack) − logit(benign)` of
/// the classifier and `x` the block's feature: `score = σ((z₁ + z₂) / 2)` (rule `mean`; center and
/// scale are the benign mean and standard deviation) or `σ(max(z₁, z₂))` (rule `max`; center and
/// scale are the benign median and the distance from it to the benign `tailQuantile`, so that each
/// detector's benign tail lands at `z = 1` and the two share the false-positive budget evenly
/// whatever the shape of their tails). Rule `separate` combines like `max`, but each detector keeps
/// its own threshold: the classifier's `z₁ = ℓ` is left as it is (so the calibrated threshold and
/// every decision of the classifier alone are unchanged), and the block is mapped affinely so that
/// its benign median lands on the classifier's benign median and its own threshold, calibrated to
/// `Classifier.fuseFalsePositiveRate` on the benign calibration prompts, lands on the classifier's
/// threshold (`init(separateLogits:block:threshold:blockThreshold:)`): the block can only add
/// rejections, within its own false-positive budget.
public struct ScoreFusion: Sendable, Equatable {
  /// Center of `ℓ` on the benign calibration prompts (mean, or median for `max`).
  public var classifierCenter: Float
  /// Scale of `ℓ` there (standard deviation, or tail quantile − median for `max`; floored at 1e-6).
  public var classifierScale: Float
  /// Center of the block's feature on the benign calibration prompts.
  public var blockCenter: Float
  /// Scale of the block's feature there (floored at 1e-6).
  public var blockScale: Float
  /// How the standardized scores combine.
  public var rule: Rule

  /// How the two standardized scores `z₁` (classifier) and `z₂` (block) combine
  /// (`DetectorConfiguration.Classifier.fuseRule`).
  public enum Rule: String, Sendable, Equatable {
    /// `(z₁ + z₂) / 2`, standardized by benign mean and deviation.
    case mean
    /// `max(z₁, z₂)`, standardized by benign median and tail quantile: either detector alone can
    /// reject.
    case max
    /// `max(z₁, z₂)` with `z₁ = ℓ` and the block mapped onto the classifier's scale at the benign
    /// median and at each detector's own threshold: either detector rejects at its own threshold.
    case separate
  }

  /// Creates a fusion from its four statistics.
  public init(
    classifierCenter: Float, classifierScale: Float, blockCenter: Float, blockScale: Float,
    rule: Rule = .mean
  ) {
    self.rule = rule
    self.classifierCenter = classifierCenter
    self.classifierScale = max(classifierScale, 1e-6)
    self.blockCenter = blockCenter
    self.blockScale = max(blockScale, 1e-6)
  }

  /// The statistics of benign calibration values: `logits` and `block` are `[n]`.
  ///
  /// - Parameter tailQuantile: For `max`, the benign quantile that maps to `z = 1` (the shipped
  ///   configurations pass `1 − targetFalsePositiveRate`).
  public init(
    benignLogits logits: [Float], benignBlock block: [Float], rule: Rule = .mean, tailQuantile: Double = 0.99
  ) {
    func moments(_ values: [Float]) -> (Float, Float) {
      let count = Double(max(values.count, 1))
      let mean = values.reduce(0.0) { $0 + Double($1) } / count
      let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / count
      return (Float(mean), Float(variance.squareRoot()))
    }
    func quantiles(_ values: [Float]) -> (Float, Float) {
      let sorted = values.filter(\.isFinite).sorted()
      guard !sorted.isEmpty else { return (0, 1) }
      func at(_ q: Double) -> Float {
        let position = q * Double(sorted.count - 1)
        let low = Int(position.rounded(.down))
        let high = Swift.min(low + 1, sorted.count - 1)
        let fraction = Float(position - Double(low))
        return sorted[low] + (sorted[high] - sorted[low]) * fraction
      }
      let median = at(0.5)
      return (median, at(Swift.min(Swift.max(tailQuantile, 0.5), 1)) - median)
    }
    let statistics = rule == .mean ? moments : quantiles
    let (classifierCenter, classifierScale) = statistics(logits)
    let (blockCenter, blockScale) = statistics(block)
    self.init(
      classifierCenter: classifierCenter, classifierScale: classifierScale, blockCenter: blockCenter,
      blockScale: blockScale, rule: rule)
  }

  /// Rule `separate`: the classifier as it is (`c₁ = 0`, `s₁ = 1`) and the block mapped affinely so
  /// that its benign median `m₂` goes to the classifier's benign median `m₁` and its threshold
  /// `blockThreshold` to `logit(threshold)`. When either threshold is not above its median (a
  /// degenerate calibration) the block is only shifted (`s₂ = 1`).
  ///
  /// - Parameters:
  ///   - logits: Classifier logit differences `ℓ` of the benign calibration prompts, `[n]`.
  ///   - block: The block's feature on the same prompts, `[n]`.
  ///   - threshold: The classifier's calibrated threshold, in (0, 1).
  ///   - blockThreshold: The block's own threshold on its feature.
  public init(separateLogits logits: [Float], block: [Float], threshold: Float, blockThreshold: Float) {
    let target = Self.logit(threshold)
    let classifierMedian = Self.median(logits)
    let blockMedian = Self.median(block)
    var scale: Float = 1
    if target > classifierMedian, blockThreshold > blockMedian {
      scale = (blockThreshold - blockMedian) / (target - classifierMedian)
    }
    if !scale.isFinite || scale < 1e-6 { scale = 1 }
    self.init(
      classifierCenter: 0, classifierScale: 1, blockCenter: blockThreshold - target * scale,
      blockScale: scale,
      rule: .separate)
  }

  /// The block feature value whose mapped score equals `threshold` (`max` and `separate`: above it
  /// the block alone rejects): `c₂ + s₂ · logit(threshold)`.
  public func blockThreshold(onto threshold: Float) -> Float {
    blockCenter + blockScale * Self.logit(threshold)
  }

  /// The score of the classifier alone, `σ(ℓ)`, computed as `score(logit:block:)` computes it (the
  /// `separate` rule calibrates its threshold on these).
  public static func sigmoid(_ z: Float) -> Float {
    1 / (1 + FastMath.exp(-max(min(z, 80), -80)))
  }

  /// `log(p / (1 − p))`, with `p` clamped to [1e-7, 1 − 1e-7].
  static func logit(_ p: Float) -> Float {
    let clamped = min(max(p, 1e-7), 1 - 1e-7)
    return log(clamped / (1 - clamped))
  }

  /// The median of the finite values (0 when there are none).
  static func median(_ values: [Float]) -> Float {
    let sorted = values.filter(\.isFinite).sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  }

  /// The stored form, `[c₁, s₁, c₂, s₂]` (bundle tensor `fusion.statistics`).
  public var values: [Float] { [classifierCenter, classifierScale, blockCenter, blockScale] }

  /// The fused score in (0, 1); a non-finite input counts as its center (under `separate`, a
  /// non-finite block feature counts as no evidence).
  public func score(logit: Float, block: Float) -> Float {
    let a = (logit - classifierCenter) / classifierScale
    let b = (block - blockCenter) / blockScale
    // Under `separate` a non-finite block feature is no evidence: the classifier alone decides.
    let (z1, z2) = (a.isFinite ? a : 0, b.isFinite ? b : (rule == .separate ? -.infinity : 0))
    return Self.sigmoid(rule == .mean ? (z1 + z2) / 2 : Swift.max(z1, z2))
  }
}

/// Feature network, feature blocks, standardization and classifier: embeddings in, scores out.
///
/// Immutable; networks (which keep per-call workspaces) come from a small pool, so any number of
/// threads may call `evaluate` at once.
public final class ScoringModel: Sendable {
  /// The configuration it was trained with.
  public let configuration: DetectorConfiguration
  /// Encoder width.
  public let hiddenSize: Int
  /// The benign feature network, when a block needs it.
  public let featureNetwork: FeatureNetworkModel?
  /// The fitted blocks, in configuration order.
  public let blocks: [any FeatureBlock]
  /// Per-column mean of the training features, `[classifierWidth]`.
  public let featureMean: [Float]
  /// Per-column standard deviation of the training features (floored), `[classifierWidth]`.
  public let featureDeviation: [Float]
  /// The classifier.
  public let classifier: ClassifierModel
  /// The fusion statistics when `configuration.classifier.fuse` names a block.
  public let fusion: ScoreFusion?
  /// The fine-tuned top layers of the encoder (bottom first) when `configuration.encoderTuning` is
  /// set: every embedding this model reads comes from the encoder with these layers
  /// (`EmbeddingProvider.adapted(to:)`). Empty: the encoder as loaded.
  public let tunedLayers: [BertLayerWeights]
  /// With `chunking.calibration = separate`: the logit shift `logit(t) − logit(t_c)` that puts a
  /// chunk score on the whole-prompt scale (`t` the calibrated threshold, `t_c` the chunk
  /// threshold; `ScoringModel.merging`; 0 when training found no benign prompt with chunks).
  /// `nil` (no chunking, or `joint`): chunk scores count as they are.
  public let chunkShift: Float?
  /// With `chunking.segments`: the logit shift `logit(t) − logit(t_s)` that puts a segment score
  /// on the whole-prompt scale (`t_s` the segment threshold, `Chunking.segments`).
  public let segmentShift: Float?
  private let pool = ReusablePool<NetworkPair>()

  /// Assembles a model.
  init(
    configuration: DetectorConfiguration, hiddenSize: Int, featureNetwork: FeatureNetworkModel?,
    blocks: [any FeatureBlock], featureMean: [Float], featureDeviation: [Float], classifier: ClassifierModel,
    fusion: ScoreFusion? = nil, tunedLayers: [BertLayerWeights] = [], chunkShift: Float? = nil,
    segmentShift: Float? = nil
  ) {
    self.chunkShift = chunkShift
    self.segmentShift = segmentShift
    self.fusion = fusion
    self.tunedLayers = tunedLayers
    self.configuration = configuration
    self.hiddenSize = hiddenSize
    self.featureNetwork = featureNetwork
    self.blocks = blocks
    self.featureMean = featureMean
    self.featureDeviation = featureDeviation
    self.classifier = classifier
  }

  /// The summed width of all blocks.
  public var featureWidth: Int { blocks.reduce(0) { $0 + $1.width } }

  /// The index of the fused block (`configuration.classifier.fuse`), which the classifier does
  /// not read.
  public var fusedBlockIndex: Int? { Self.fusedBlockIndex(configuration) }

  /// The index of `configuration.classifier.fuse` among the feature blocks.
  static func fusedBlockIndex(_ configuration: DetectorConfiguration) -> Int? {
    configuration.classifier.fuse.flatMap { configuration.features.firstIndex(of: $0) }
  }

  /// The classifier's input width: every block but the fused one.
  public var classifierWidth: Int { Self.classifierWidth(blocks, fusedBlock: fusedBlockIndex) }

  /// The summed width of `blocks` without the block at `fusedBlock`.
  static func classifierWidth(_ blocks: [any FeatureBlock], fusedBlock: Int?) -> Int {
    blocks.indices.filter { $0 != fusedBlock }.reduce(0) { $0 + blocks[$1].width }
  }

  /// The classifier's input parts: `parts` without the fused block's.
  static func classifierParts(_ parts: [Matrix], fusedBlock: Int?) -> [Matrix] {
    parts.indices.filter { $0 != fusedBlock }.map { parts[$0] }
  }

  /// `logit(attack) − logit(benign)` of the classifier for standardized features `[batch, width]`.
  static func logitDifferences(_ standardized: Matrix, classifier: Sequential) -> [Float] {
    guard standardized.rows > 0 else { return [] }
    let logits = classifier.forward(Tensor(standardized), training: false)
    return (0..<standardized.rows).map { logits.storage[$0 * 2 + 1] - logits.storage[$0 * 2] }
  }

  /// Wire names of the reported features, in order.
  public var wireNames: [String] { blocks.flatMap(\.wireNames) }

  /// Runs the feature network (if any) and every block's `extract`; `stages`, when given, receives
  /// the time of the feature network and of each block's `extract`.
  ///
  /// - Returns: One raw matrix per block, `[batch, rawWidth]`, and the network outputs.
  func rawFeatures(_ embeddings: [PromptEmbedding], networks: NetworkPair, stages: StageClock? = nil)
    -> ([Matrix], NetworkOutputs?)
  {
    let outputs = StageClock.time("feature_network", on: stages) {
      featureNetwork.flatMap { model in networks.feature.map { model.outputs(embeddings, network: $0) } }
    }
    let batch = FeatureBatch(embeddings: embeddings, network: outputs)
    return (
      blocks.map { block in StageClock.time(type(of: block).name, on: stages) { block.extract(batch) } },
      outputs
    )
  }

  /// Concatenates the blocks' transformed rows: `[batch, featureWidth]`.
  static func concatenate(_ parts: [Matrix]) -> Matrix {
    guard let rows = parts.first?.rows else { return Matrix(rows: 0, columns: 0) }
    let width = parts.reduce(0) { $0 + $1.columns }
    var storage = [Float](repeating: 0, count: rows * width)
    var offset = 0
    for part in parts {
      for row in 0..<rows {
        for c in 0..<part.columns { storage[row * width + offset + c] = part.storage[row * part.columns + c] }
      }
      offset += part.columns
    }
    return Matrix(rows: rows, columns: width, storage: storage)
  }

  /// Standardizes features with the training statistics.
  static func standardize(_ features: Matrix, mean: [Float], deviation: [Float]) -> Matrix {
    var result = features
    for row in 0..<features.rows {
      for c in 0..<features.columns {
        let index = row * features.columns + c
        let value = (features.storage[index] - mean[c]) / deviation[c]
        result.storage[index] = value.isFinite ? value : 0
      }
    }
    return result
  }

  /// Probabilities of "adversarial" for standardized features `[batch, classifierWidth]`.
  static func probabilities(_ standardized: Matrix, classifier: Sequential) -> [Float] {
    guard standardized.rows > 0 else { return [] }
    let probabilities = softmax(classifier.forward(Tensor(standardized), training: false))
    return (0..<standardized.rows).map { probabilities.storage[$0 * 2 + 1] }
  }

  /// Scores embedded prompts.
  ///
  /// - Parameters:
  ///   - embeddings: The prompts.
  ///   - explain: Whether to compute curvature positions and nearest benign distances.
  /// - Returns: One evaluation per prompt.
  /// - Throws: `DetectionError` when a block fails or the stored networks are malformed.
  public func evaluate(_ embeddings: [PromptEmbedding], explain: Bool) throws(DetectionError)
    -> [PromptEvaluation]
  {
    try evaluate(embeddings, explain: explain, stages: nil)
  }

  /// `evaluate(_:explain:)`, timing its stages into `stages` (for `curvalid bench detector`): the
  /// feature network (`feature_network`), each block's `extract` and `transform` under the block's
  /// name, and standardization with the classifier (`classifier`).
  package func evaluate(_ embeddings: [PromptEmbedding], explain: Bool, stages: StageClock?)
    throws(DetectionError) -> [PromptEvaluation]
  {
    guard !embeddings.isEmpty else { return [] }
    let networks = try pool.take { () throws(DetectionError) in
      NetworkPair(feature: try featureNetwork?.makeNetwork(), classifier: try classifier.makeNetwork())
    }
    defer { pool.give(networks) }
    let (raw, outputs) = rawFeatures(embeddings, networks: networks, stages: stages)
    var transformed: [Matrix] = []
    for (block, rows) in zip(blocks, raw) {
      transformed.append(
        try StageClock.time(type(of: block).name, on: stages) { () throws(DetectionError) in
          try block.transform(rows, trainingRows: [])
        })
    }
    let fusedBlock = fusedBlockIndex
    let scores = StageClock.time("classifier", on: stages) { () -> [Float] in
      let standardized = Self.standardize(
        Self.concatenate(Self.classifierParts(transformed, fusedBlock: fusedBlock)), mean: featureMean,
        deviation: featureDeviation)
      guard let fusion, let fusedBlock else {
        return Self.probabilities(standardized, classifier: networks.classifier)
      }
      let logits = Self.logitDifferences(standardized, classifier: networks.classifier)
      let block = transformed[fusedBlock]
      return logits.indices.map { fusion.score(logit: logits[$0], block: block.storage[$0 * block.columns]) }
    }
    var wire: [[Decision.Feature]] = Array(repeating: [], count: embeddings.count)
    for (block, part) in zip(blocks, transformed) where !block.wireNames.isEmpty {
      for row in 0..<part.rows {
        for (c, name) in block.wireNames.enumerated() {
          wire[row].append(Decision.Feature(name: name, value: part.storage[row * part.columns + c]))
        }
      }
    }
    var nearest: [[Float]] = Array(repeating: [], count: embeddings.count)
    if explain, let index = blocks.firstIndex(where: { $0 is PromptLIDBlock }),
      let lid = blocks[index] as? PromptLIDBlock
    {
      nearest = lid.nearestDistances(raw[index], count: 5)
    }
    return embeddings.indices.map { item in
      PromptEvaluation(
        score: scores[item], features: wire[item], tokens: embeddings[item].totalTokens,
        curvaturePositions: explain ? Self.curvaturePositions(outputs, item: item) : [],
        nearestBenignDistances: nearest[item])
    }
  }

  /// The five token positions with the largest conv1 curvature: the pair of conv1 positions
  /// `(j, j + 1)` is attributed to the token at the centre of position `j + 1`'s window.
  static func curvaturePositions(_ outputs: NetworkOutputs?, item: Int) -> [(position: Int, value: Float)] {
    guard let outputs else { return [] }
    let conv1 = outputs.conv1
    let length = conv1.shape[1]
    let channels = conv1.shape[2]
    let rows = min(outputs.conv1Lengths[item], length)
    let profile = conv1.storage.withUnsafeBufferPointer { all in
      TextCurvature.profile(
        UnsafeBufferPointer(rebasing: all[(item * length * channels)..<((item * length + rows) * channels)]),
        rows: rows, columns: channels)
    }
    let centre = (outputs.kernelSize - 1) / 2
    let pairs = profile.values.indices.filter { profile.valid[$0] }
      .map { (position: $0 + 1 + centre, value: profile.values[$0]) }
    return Array(
      pairs.sorted { $0.value > $1.value || ($0.value == $1.value && $0.position < $1.position) }.prefix(5))
  }
}

/// Wall-clock seconds per named stage, summed over calls (`ScoringModel.evaluate(_:explain:stages:)`).
///
/// Not thread-safe: one clock per caller.
package final class StageClock {
  /// Stage names in first-seen order.
  package private(set) var names: [String] = []
  /// Summed seconds per stage.
  package private(set) var seconds: [String: Double] = [:]

  package init() {}

  /// Runs `body`, adding its wall-clock time to `stage` on `clock` (just runs it without a clock).
  static func time<T, E: Error>(_ stage: String, on clock: StageClock?, _ body: () throws(E) -> T) throws(E)
    -> T
  {
    guard let clock else { return try body() }
    let start = DispatchTime.now().uptimeNanoseconds
    defer {
      if clock.seconds[stage] == nil { clock.names.append(stage) }
      clock.seconds[stage, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
    return try body()
  }
}

/// A feature network and a classifier for one thread at a time.
final class NetworkPair: @unchecked Sendable {
  let feature: Sequential?
  let classifier: Sequential

  init(feature: Sequential?, classifier: Sequential) {
    self.feature = feature
    self.classifier = classifier
  }
}

/// Idle values (networks, which keep per-call workspaces), handed to one caller at a time and
/// made on demand when none is idle; at most `limit` are kept.
final class ReusablePool<Value>: @unchecked Sendable {
  private let lock = NSLock()
  private var idle: [Value] = []
  private let limit: Int

  init(limit: Int = 8) {
    self.limit = limit
  }

  /// An idle value, or a new one from `make`.
  func take(orMake make: () throws(DetectionError) -> Value) throws(DetectionError) -> Value {
    lock.lock()
    if let value = idle.popLast() {
      lock.unlock()
      return value
    }
    lock.unlock()
    return try make()
  }

  /// Returns a value for reuse.
  func give(_ value: Value) {
    lock.lock()
    if idle.count < limit { idle.append(value) }
    lock.unlock()
  }
}
