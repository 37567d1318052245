import Foundation
import Geometry
import LinearAlgebra
import NeuralNetwork

/// What a feature block knows when it is created.
public struct FeatureBlockContext: Sendable {
  /// The detector's configuration.
  public let configuration: DetectorConfiguration
  /// Encoder width `d`.
  public let hiddenSize: Int

  /// A context for blocks of a `hiddenSize`-wide encoder.
  package init(configuration: DetectorConfiguration, hiddenSize: Int) {
    self.configuration = configuration
    self.hiddenSize = hiddenSize
  }
}

/// A named group of classifier inputs computed from a batch of prompts.
///
/// A block works in two steps so that training can fit it on the training split: `extract` turns
/// a batch into raw rows (`[batch, rawWidth]`, no fitted state needed), `fit` learns from the raw
/// rows of the training split (e.g. the PromptLID reference set), and `transform` maps raw rows to
/// the block's features (`[batch, width]`). Fitted state is saved as named tensors in the bundle.
/// New blocks plug in by adding their type to `FeatureBlockRegistry.types`; the training pipeline,
/// the bundle and the detector handle every block alike.
public protocol FeatureBlock: Sendable {
  /// The registry name (`prompt_lid`, `curvature_conv1`, …).
  static var name: String { get }
  /// Whether `extract` reads the feature network's outputs.
  static var needsFeatureNetwork: Bool { get }
  /// An unfitted block.
  init(context: FeatureBlockContext)
  /// Width of `extract`'s rows.
  var rawWidth: Int { get }
  /// Width of `transform`'s rows.
  var width: Int { get }
  /// Wire names of the columns, reported in replies (`width` names, or none for wide learned
  /// blocks).
  var wireNames: [String] { get }
  /// Raw rows for a batch: `[batch, rawWidth]`.
  func extract(_ batch: FeatureBatch) -> Matrix
  /// Learns from the training split's raw rows.
  ///
  /// - Parameters:
  ///   - raw: `[trainingRows, rawWidth]`.
  ///   - isBenign: `[trainingRows]`, which rows are benign (the reference population).
  mutating func fit(raw: Matrix, isBenign: [Bool]) throws(DetectionError)
  /// Features from raw rows: `[rows, width]`.
  ///
  /// - Parameter trainingRows: For the rows of the training split passed to `fit`, their index
  ///   there (so a reference point is never its own neighbour); empty for other rows.
  func transform(_ raw: Matrix, trainingRows: [Int?]) throws(DetectionError) -> Matrix
  /// Fitted state, names prefixed `block.<name>.`.
  func exportTensors() -> [NamedTensor]
  /// Restores fitted state.
  mutating func load(_ tensors: [String: NamedTensor]) throws(DetectionError)
}

extension FeatureBlock {
  /// Blocks without fitted state keep nothing.
  public func exportTensors() -> [NamedTensor] { [] }
  /// Blocks without fitted state restore nothing.
  public mutating func load(_ tensors: [String: NamedTensor]) throws(DetectionError) {}
  /// Blocks without fitted state learn nothing.
  public mutating func fit(raw: Matrix, isBenign: [Bool]) throws(DetectionError) {}
  /// The identity transform (raw rows are the features).
  public func transform(_ raw: Matrix, trainingRows: [Int?]) throws(DetectionError) -> Matrix { raw }
  /// Raw and transformed widths agree unless a block says otherwise.
  public var width: Int { rawWidth }
}

/// The feature blocks a configuration may name.
public enum FeatureBlockRegistry {
  /// Every block type, by name.
  public static let types: [any FeatureBlock.Type] = [
    PromptLIDBlock.self, CurvatureBlock.Conv1.self, CurvatureBlock.Conv2.self, MeanEmbeddingBlock.self,
    LogTokenCountBlock.self, SupervisedTokenCNNBlock.self, TailEmbeddingBlock.self, AttackLIDBlock.self,
    CurvatureBlock.Profile.self, LowerLayerMeanBlock.self,
  ]

  /// The block names.
  public static var names: [String] { types.map { $0.name } }

  /// An unfitted block of the given name.
  ///
  /// - Throws: `DetectionError(.invalidInput)` for an unknown name.
  static func make(_ name: String, context: FeatureBlockContext) throws(DetectionError) -> any FeatureBlock {
    guard let type = types.first(where: { $0.name == name }) else {
      throw DetectionError(.invalidInput, "unknown feature block '\(name)'")
    }
    return type.init(context: context)
  }

  /// Whether any of the named blocks needs the feature network.
  static func needsFeatureNetwork(_ names: [String]) -> Bool {
    types.contains { names.contains($0.name) && $0.needsFeatureNetwork }
  }
}

/// The training prompts a LID block's reference set holds.
public protocol LIDPopulation: Sendable {
  /// The block's registry and wire name.
  static var blockName: String { get }
  /// The population in messages (`benign`, `attack`).
  static var label: String { get }
  /// Whether a training prompt belongs to the population.
  static func includes(isBenign: Bool) -> Bool
}

/// The benign training prompts: PromptLID.
public enum BenignLIDPopulation: LIDPopulation {
  public static let blockName = "prompt_lid"
  public static let label = "benign"
  public static func includes(isBenign: Bool) -> Bool { isBenign }
}

/// The attack training prompts: the LID of a prompt among known attacks (issue 6, "LID relative
/// to both benign and attack reference sets").
public enum AttackLIDPopulation: LIDPopulation {
  public static let blockName = "attack_lid"
  public static let label = "attack"
  public static func includes(isBenign: Bool) -> Bool { !isBenign }
}

/// PromptLID (DESIGN §1).
public typealias PromptLIDBlock = LIDBlock<BenignLIDPopulation>
/// The same estimator against the attack training prompts (`attack_lid`).
public typealias AttackLIDBlock = LIDBlock<AttackLIDPopulation>

/// The LID of a prompt's dense activation against the dense activations of one population of
/// training prompts (`Population`), with `k` neighbours; a reference point never counts as its
/// own neighbour, outside prompts keep their nearest neighbour.
public struct LIDBlock<Population: LIDPopulation>: FeatureBlock {
  public static var name: String { Population.blockName }
  public static var needsFeatureNetwork: Bool { true }
  /// Neighbours.
  public let k: Int
  /// The estimator.
  public let estimator: LIDEstimator
  /// Dense width.
  public let rawWidth: Int
  public let width = 1
  public var wireNames: [String] { [Self.name] }
  /// The reference set, `[references, rawWidth]`, once fitted.
  public private(set) var reference: LIDReference?
  /// For each training row, its index in the reference set (filled by `fit`, not saved).
  private var referenceIndexOfTrainingRow: [Int?] = []

  public init(context: FeatureBlockContext) {
    k = context.configuration.lidK
    estimator = context.configuration.estimator
    rawWidth = context.configuration.featureNetwork.dense
  }

  public func extract(_ batch: FeatureBatch) -> Matrix {
    batch.network?.dense ?? Matrix(rows: batch.count, columns: rawWidth)
  }

  public mutating func fit(raw: Matrix, isBenign: [Bool]) throws(DetectionError) {
    var storage: [Float] = []
    var map: [Int?] = []
    var count = 0
    for row in 0..<raw.rows {
      if Population.includes(isBenign: isBenign[row]) {
        storage += raw.row(row)
        map.append(count)
        count += 1
      } else {
        map.append(nil)
      }
    }
    guard count > k else {
      throw DetectionError(
        .invalidInput,
        "\(Self.name) needs more than k = \(k) \(Population.label) training prompts, got \(count)")
    }
    try setReference(Matrix(rows: count, columns: raw.columns, storage: storage))
    referenceIndexOfTrainingRow = map
  }

  private mutating func setReference(_ matrix: Matrix) throws(DetectionError) {
    do {
      reference = try LIDReference(matrix)
    } catch {
      throw DetectionError(.invalidInput, "\(Self.name) reference set: \(error.message)")
    }
  }

  public func transform(_ raw: Matrix, trainingRows: [Int?]) throws(DetectionError) -> Matrix {
    guard let reference else { throw DetectionError(.internalError, "\(Self.name) is not fitted") }
    let excluded: [Int?] =
      trainingRows.isEmpty
      ? []
      : trainingRows.map {
        $0.flatMap {
          referenceIndexOfTrainingRow.indices.contains($0) ? referenceIndexOfTrainingRow[$0] : nil
        }
      }
    do {
      let values = try reference.lid(of: raw, k: k, estimator: estimator, excludingIndices: excluded)
      return Matrix(rows: raw.rows, columns: 1, storage: values)
    } catch {
      throw DetectionError(.internalError, "\(Self.name): \(error.message)")
    }
  }

  /// Ascending distances from each raw row to its `count` nearest reference points: `[rows][count]`.
  public func nearestDistances(_ raw: Matrix, count: Int) -> [[Float]] {
    guard let reference, count > 0,
      let found = try? reference.neighbors.search(raw, k: min(count, reference.count), excludingIndices: [])
    else { return Array(repeating: [], count: raw.rows) }
    return (0..<raw.rows).map { found.distances(ofQuery: $0) }
  }

  public func exportTensors() -> [NamedTensor] {
    guard let reference else { return [] }
    let matrix = reference.reference
    return [
      NamedTensor(
        name: "block.\(Self.name).reference", shape: [matrix.rows, matrix.columns], values: matrix.storage)
    ]
  }

  public mutating func load(_ tensors: [String: NamedTensor]) throws(DetectionError) {
    guard let stored = tensors["block.\(Self.name).reference"], stored.shape.count == 2,
      stored.shape[1] == rawWidth, stored.shape[0] > k
    else {
      throw DetectionError(.invalidBundle, "tensor 'block.\(Self.name).reference' is missing or malformed")
    }
    try setReference(Matrix(rows: stored.shape[0], columns: stored.shape[1], storage: stored.values))
  }
}

/// TextCurv (DESIGN §1): the mean Whewell-style curvature over consecutive positions of a
/// convolution's output.
public enum CurvatureBlock {
  /// Mean curvature of a prompt's positions in a `[batch, length, channels]` tensor.
  static func means(_ tensor: Tensor, lengths: [Int]) -> Matrix {
    summaries(tensor, lengths: lengths, width: 1) { [$0.mean] }
  }

  /// The spread of a prompt's per-position curvature in a `[batch, length, channels]` tensor:
  /// standard deviation, minimum, quartiles and maximum of its valid positions, `[batch, 6]`
  /// (zeros for a prompt with none).
  static func spreads(_ tensor: Tensor, lengths: [Int]) -> Matrix {
    summaries(tensor, lengths: lengths, width: 6) { profile in
      let statistics = profile.statistics
      return [
        statistics.standardDeviation, statistics.minimum, statistics.lowerQuartile, statistics.median,
        statistics.upperQuartile, statistics.maximum,
      ]
    }
  }

  /// `summary` (`width` values) of each prompt's curvature profile over its first `lengths[i]`
  /// positions of a `[batch, length, channels]` tensor: `[batch, width]`.
  private static func summaries(
    _ tensor: Tensor, lengths: [Int], width: Int, summary: (CurvatureProfile) -> [Float]
  ) -> Matrix {
    let length = tensor.shape[1]
    let channels = tensor.shape[2]
    var values: [Float] = []
    values.reserveCapacity(tensor.batch * width)
    tensor.storage.withUnsafeBufferPointer { all in
      for item in 0..<tensor.batch {
        let rows = min(lengths[item], length)
        let slice = UnsafeBufferPointer(
          rebasing: all[(item * length * channels)..<((item * length + rows) * channels)])
        values += summary(TextCurvature.profile(slice, rows: rows, columns: channels))
      }
    }
    return Matrix(rows: tensor.batch, columns: width, storage: values)
  }

  /// Per-position curvature profiles (issue 6, "per-position curvature profiles"): the spread of
  /// both convolutions' curvature along the prompt, 12 values (`spreads` of conv1, then conv2).
  public struct Profile: FeatureBlock {
    public static let name = "curvature_profile"
    public static let needsFeatureNetwork = true
    public let rawWidth = 12
    public let wireNames = ["conv1", "conv2"].flatMap { conv in
      ["std", "min", "q1", "median", "q3", "max"].map { "curvature_\(conv)_\($0)" }
    }
    public init(context: FeatureBlockContext) {}
    public func extract(_ batch: FeatureBatch) -> Matrix {
      guard let network = batch.network else { return Matrix(rows: batch.count, columns: 12) }
      let first = CurvatureBlock.spreads(network.conv1, lengths: network.conv1Lengths)
      let second = CurvatureBlock.spreads(network.conv2, lengths: network.conv2Lengths)
      var storage: [Float] = []
      storage.reserveCapacity(batch.count * 12)
      for item in 0..<batch.count { storage += first.row(item) + second.row(item) }
      return Matrix(rows: batch.count, columns: 12, storage: storage)
    }
  }

  /// TextCurv on the first convolution's output.
  public struct Conv1: FeatureBlock {
    public static let name = "curvature_conv1"
    public static let needsFeatureNetwork = true
    public let rawWidth = 1
    public let wireNames = ["curvature_conv1"]
    public init(context: FeatureBlockContext) {}
    public func extract(_ batch: FeatureBatch) -> Matrix {
      guard let network = batch.network else { return Matrix(rows: batch.count, columns: 1) }
      return CurvatureBlock.means(network.conv1, lengths: network.conv1Lengths)
    }
  }

  /// TextCurv on the second convolution's output.
  public struct Conv2: FeatureBlock {
    public static let name = "curvature_conv2"
    public static let needsFeatureNetwork = true
    public let rawWidth = 1
    public let wireNames = ["curvature_conv2"]
    public init(context: FeatureBlockContext) {}
    public func extract(_ batch: FeatureBatch) -> Matrix {
      guard let network = batch.network else { return Matrix(rows: batch.count, columns: 1) }
      return CurvatureBlock.means(network.conv2, lengths: network.conv2Lengths)
    }
  }
}

/// The mean of a prompt's token rows (all rows kept, `[CLS]`/`[SEP]` included): `[d]`.
public struct MeanEmbeddingBlock: FeatureBlock {
  public static let name = "mean_embedding"
  public static let needsFeatureNetwork = false
  public let rawWidth: Int
  public let wireNames: [String] = []
  public init(context: FeatureBlockContext) { rawWidth = context.hiddenSize }
  public func extract(_ batch: FeatureBatch) -> Matrix {
    Self.means(batch, width: rawWidth) { rows in 0..<rows }
  }

  /// The mean of each prompt's token rows in `span(rows)`: `[batch, width]` (zeros for an empty
  /// span); `width` is the encoder's `d`.
  static func means(_ batch: FeatureBatch, width: Int, span: (Int) -> Range<Int>) -> Matrix {
    var storage = [Float](repeating: 0, count: batch.count * width)
    for (item, embedding) in batch.embeddings.enumerated() {
      let range = span(embedding.hidden.rows)
      guard !range.isEmpty else { continue }
      let scale = 1 / Float(range.count)
      embedding.hidden.storage.withUnsafeBufferPointer { source in
        for row in range {
          for c in 0..<width { storage[item * width + c] += source[row * width + c] * scale }
        }
      }
    }
    return Matrix(rows: batch.count, columns: width, storage: storage)
  }
}

/// The mean of a prompt's last `tokens` kept rows (`[SEP]` included; all rows when fewer): `[d]`.
/// Instructions appended to a long benign task (prompt injection) sit at the end, where the whole
/// prompt's mean dilutes them.
public struct TailEmbeddingBlock: FeatureBlock {
  public static let name = "tail_embedding"
  public static let needsFeatureNetwork = false
  /// Rows averaged at the end of the prompt.
  public static let tokens = 32
  public let rawWidth: Int
  public let wireNames: [String] = []
  public init(context: FeatureBlockContext) { rawWidth = context.hiddenSize }
  public func extract(_ batch: FeatureBatch) -> Matrix {
    MeanEmbeddingBlock.means(batch, width: rawWidth) { rows in max(0, rows - Self.tokens)..<rows }
  }
}

/// The mean of a prompt's kept rows after the encoder's first layer, `[d]` (`layer1_mean`).
///
/// The last layer mixes every token with its context; the first still reads the wording, which
/// ranks prompts outside the training sources better beside the last layer's mean
/// (docs/evaluation.md, "Several encoder layers"). The mean is taken in the pass that encoded the
/// prompt (`PromptEmbedding.lowerLayerMean`); for a cache entry it is recomputed from the ids by
/// the embedding's lexicon (the bottom layer again). Zeros for an embedding with neither.
public struct LowerLayerMeanBlock: FeatureBlock {
  public static let name = "layer1_mean"
  public static let needsFeatureNetwork = false
  /// Encoder layers below the averaged rows.
  public static let layerCount = 1
  public let rawWidth: Int
  public let wireNames: [String] = []
  public init(context: FeatureBlockContext) { rawWidth = context.hiddenSize }

  public func extract(_ batch: FeatureBatch) -> Matrix {
    var result = Matrix(rows: batch.count, columns: rawWidth)
    var recomputed: [Int] = []
    for (item, embedding) in batch.embeddings.enumerated() {
      if let mean = embedding.lowerLayerMean, mean.count == rawWidth {
        for c in 0..<rawWidth { result[item, c] = mean[c] }
      } else if embedding.lexicon != nil {
        recomputed.append(item)
      }
    }
    // One lexicon for the batch: every embedding of a provider carries its encoder.
    guard let first = recomputed.first, let lexicon = batch.embeddings[first].lexicon,
      let means = try? lexicon.lowerLayerMeans(
        recomputed.map { batch.embeddings[$0].ids }, layerCount: Self.layerCount),
      means.columns == rawWidth
    else { return result }
    for (row, item) in recomputed.enumerated() {
      for c in 0..<rawWidth { result[item, c] = means[row, c] }
    }
    return result
  }
}

/// `log(1 + tokens)` over the whole prompt (all windows): a length control for ablations.
public struct LogTokenCountBlock: FeatureBlock {
  public static let name = "log_tokens"
  public static let needsFeatureNetwork = false
  public let rawWidth = 1
  public let wireNames = ["log_tokens"]
  public init(context: FeatureBlockContext) {}
  public func extract(_ batch: FeatureBatch) -> Matrix {
    Matrix(rows: batch.count, columns: 1, storage: batch.embeddings.map { log(1 + Float($0.totalTokens)) })
  }
}
