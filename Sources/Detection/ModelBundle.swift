import Embeddings
import Foundation
import Hashing
import LinearAlgebra
import NeuralNetwork

/// A trained detector as one file in the safetensors layout (DESIGN §3).
///
/// Tensors (all F32): `feature_net.*` (CNN weights), `input.mean`/`input.std` `[d]` (token
/// standardization), `block.*` (fitted block state, e.g. `block.prompt_lid.reference`
/// `[references, 128]`), `features.mean`/`features.std` `[classifierWidth]`, `classifier.*` (weights
/// and batch-norm running statistics), `topics.centroids` `[C, d]` (k-means topics, when used),
/// `fusion.statistics` `[4]` (`ScoreFusion.values`, when `classifier.fuse` names a block; the
/// fused block's columns are then left out of `features.*` and the classifier's input),
/// `encoder_tuned.<i>.<tensor>` (the fine-tuned top encoder layers, `i` from 0 at the lowest, in
/// the layouts of `BertLayerWeights.namedTensors`, when `encoderTuning` is set).
/// `__metadata__` holds `format_version`, `encoder_name`, `encoder_sha256`, `configuration`
/// (JSON), `threshold`, `feature_names` (JSON wire names), `feature_blocks` (JSON name → width),
/// `hidden_size`, `topic_classes`, `corpus_sha256`, `training_counts` (JSON label/family → count),
/// `evaluation` (JSON test-split summary) and `tool`.
public struct ModelBundle: Sendable {
  /// The bundle format this code writes and reads.
  public static let formatVersion = "1"

  /// Features, networks, standardization and classifier.
  public let model: ScoringModel
  /// The calibrated decision threshold on the score.
  public let threshold: Float
  /// Encoder name (e.g. `all-MiniLM-L6-v2`).
  public let encoderName: String
  /// sha256 of the encoder weights the bundle was trained with.
  public let encoderSHA256: String
  /// sha256 of the training corpus files.
  public let corpusDigest: String
  /// Training examples per `label/family`.
  public let trainingCounts: [String: Int]
  /// Test-split summary computed at the end of training (`roc_auc`, `tpr`, `fpr`, …).
  public let evaluation: [String: Double]
  /// k-means topic centroids `[C, d]`, when the topics were k-means clusters.
  public let topicCentroids: Matrix?
  /// The tool that wrote the bundle.
  public let tool: String

  /// The configuration the bundle was trained with.
  public var configuration: DetectorConfiguration { model.configuration }

  /// Assembles a bundle.
  public init(
    model: ScoringModel, threshold: Float, encoderName: String, encoderSHA256: String, corpusDigest: String,
    trainingCounts: [String: Int], evaluation: [String: Double], topicCentroids: Matrix?,
    tool: String = DetectorTraining.toolVersion
  ) {
    self.model = model
    self.threshold = threshold
    self.encoderName = encoderName
    self.encoderSHA256 = encoderSHA256
    self.corpusDigest = corpusDigest
    self.trainingCounts = trainingCounts
    self.evaluation = evaluation
    self.topicCentroids = topicCentroids
    self.tool = tool
  }

  /// The model id of a bundle file: the first 8 hex digits of its sha256.
  ///
  /// - Throws: `DetectionError(.io)` when the file cannot be read.
  public static func modelID(of url: URL) throws(DetectionError) -> String {
    do {
      return String(try SHA256.hexDigest(ofFile: url).prefix(8))
    } catch {
      throw DetectionError(.io, "cannot read \(url.path): \(error.localizedDescription)")
    }
  }

  /// Writes the bundle atomically.
  ///
  /// - Throws: `DetectionError(.io)` when the file cannot be written.
  public func write(to url: URL) throws(DetectionError) {
    var tensors: [SafetensorsWriter.Tensor] = []
    func add(_ name: String, _ shape: [Int], _ values: [Float]) {
      tensors.append(SafetensorsWriter.Tensor(name: name, shape: shape, values: values))
    }
    if let network = model.featureNetwork {
      for tensor in network.tensors { add(tensor.name, tensor.shape, tensor.values) }
      add("input.mean", [network.inputMean.count], network.inputMean)
      add("input.std", [network.inputStandardDeviation.count], network.inputStandardDeviation)
    }
    for block in model.blocks {
      for tensor in block.exportTensors() { add(tensor.name, tensor.shape, tensor.values) }
    }
    add("features.mean", [model.featureMean.count], model.featureMean)
    add("features.std", [model.featureDeviation.count], model.featureDeviation)
    for tensor in model.classifier.tensors { add(tensor.name, tensor.shape, tensor.values) }
    if let fusion = model.fusion { add("fusion.statistics", [4], fusion.values) }
    if let shift = model.chunkShift { add("chunking.shift", [1], [shift]) }
    if let shift = model.segmentShift { add("chunking.segment_shift", [1], [shift]) }
    for (index, layer) in model.tunedLayers.enumerated() {
      for (name, shape, values) in layer.namedTensors(hiddenSize: model.hiddenSize) {
        add("encoder_tuned.\(index).\(name)", shape, values)
      }
    }
    if let topicCentroids {
      add("topics.centroids", [topicCentroids.rows, topicCentroids.columns], topicCentroids.storage)
    }
    let blocks = model.blocks.map { ["name": type(of: $0).name, "width": $0.width] as [String: Any] }
    let metadata: [String: String] = [
      "format_version": Self.formatVersion,
      "encoder_name": encoderName,
      "encoder_sha256": encoderSHA256,
      "configuration": configuration.json(),
      "threshold": "\(threshold)",
      "feature_names": JSONFormatting.text(model.wireNames),
      "feature_blocks": JSONFormatting.text(blocks),
      "hidden_size": "\(model.hiddenSize)",
      "topic_classes": "\(model.featureNetwork?.classes ?? 0)",
      "corpus_sha256": corpusDigest,
      "training_counts": JSONFormatting.text(trainingCounts),
      "evaluation": JSONFormatting.text(evaluation),
      "tool": tool,
    ]
    do {
      try SafetensorsWriter.write(tensors, metadata: metadata, to: url)
    } catch {
      throw DetectionError(.io, "cannot write model bundle: \(error.message)")
    }
  }

  /// Reads and validates a bundle.
  ///
  /// - Parameters:
  ///   - url: The bundle file.
  ///   - encoderSHA256: The digest of the encoder that will embed prompts; `nil` skips the check.
  /// - Returns: The bundle.
  /// - Throws: `DetectionError(.invalidBundle)` (one line) for a malformed file, another format
  ///   version, a missing tensor, or an encoder digest other than the bundle's.
  public static func read(from url: URL, encoderSHA256: String?) throws(DetectionError) -> ModelBundle {
    let file: SafetensorsFile
    do {
      file = try SafetensorsFile(contentsOf: url)
    } catch {
      let code: DetectionError.Code = error.code == .fileNotFound ? .io : .invalidBundle
      throw DetectionError(code, "cannot load model bundle: \(error.message)")
    }
    let path = url.path
    let metadata = file.metadata
    func field(_ key: String) throws(DetectionError) -> String {
      guard let value = metadata[key] else {
        throw DetectionError(.invalidBundle, "model bundle \(path) has no '\(key)' metadata")
      }
      return value
    }
    let version = try field("format_version")
    guard version == formatVersion else {
      throw DetectionError(
        .invalidBundle,
        "model bundle \(path) has format version \(version); this build reads version \(formatVersion)")
    }
    let bundleEncoder = try field("encoder_sha256")
    if let encoderSHA256, encoderSHA256 != bundleEncoder {
      throw DetectionError(
        .invalidBundle,
        "model bundle \(path) was trained with encoder \(bundleEncoder.prefix(12))…, but the encoder in use is "
          + "\(encoderSHA256.prefix(12))…")
    }
    let configuration = try DetectorConfiguration.fromJSON(try field("configuration"))
    guard let threshold = Float(try field("threshold")), let hiddenSize = Int(try field("hidden_size")),
      let classes = Int(try field("topic_classes"))
    else {
      throw DetectionError(.invalidBundle, "model bundle \(path) has malformed threshold or sizes")
    }
    var byName: [String: NamedTensor] = [:]
    for name in file.tensorNames {
      guard let info = file.info(name), let values = try? file.floats(name) else {
        throw DetectionError(.invalidBundle, "model bundle \(path): tensor '\(name)' is unreadable")
      }
      byName[name] = NamedTensor(name: name, shape: info.shape, values: values)
    }
    func tensor(_ name: String) throws(DetectionError) -> NamedTensor {
      guard let tensor = byName[name] else {
        throw DetectionError(.invalidBundle, "model bundle \(path) is missing tensor '\(name)'")
      }
      return tensor
    }
    let context = FeatureBlockContext(configuration: configuration, hiddenSize: hiddenSize)
    var featureNetwork: FeatureNetworkModel?
    if FeatureBlockRegistry.needsFeatureNetwork(configuration.features) {
      var random = NetworkRandom(seed: 0)
      let names = FeatureNetworkModel.architecture(
        configuration.featureNetwork, hiddenSize: hiddenSize, classes: classes, random: &random
      ).tensors.map(\.name)
      var tensors: [NamedTensor] = []
      for name in names { tensors.append(try tensor(name)) }
      featureNetwork = FeatureNetworkModel(
        settings: configuration.featureNetwork, hiddenSize: hiddenSize, classes: classes,
        inputMean: try tensor("input.mean").values, inputStandardDeviation: try tensor("input.std").values,
        tensors: tensors)
      _ = try featureNetwork?.makeNetwork()
    }
    var blocks: [any FeatureBlock] = []
    for name in configuration.features {
      var block = try FeatureBlockRegistry.make(name, context: context)
      try block.load(byName)
      blocks.append(block)
    }
    let fusedBlock = ScoringModel.fusedBlockIndex(configuration)
    let width = ScoringModel.classifierWidth(blocks, fusedBlock: fusedBlock)
    let mean = try tensor("features.mean").values
    let deviation = try tensor("features.std").values
    guard mean.count == width, deviation.count == width else {
      throw DetectionError(.invalidBundle, "model bundle \(path): feature statistics do not match the blocks")
    }
    var random = NetworkRandom(seed: 0)
    let classifierNames = ClassifierModel.architecture(
      configuration.classifier, inputWidth: width, random: &random
    )
    .tensors.map(\.name)
    var classifierTensors: [NamedTensor] = []
    for name in classifierNames { classifierTensors.append(try tensor(name)) }
    let classifier = ClassifierModel(
      settings: configuration.classifier, inputWidth: width, tensors: classifierTensors)
    _ = try classifier.makeNetwork()
    let centroids = byName["topics.centroids"].flatMap { stored in
      stored.shape.count == 2
        ? Matrix(rows: stored.shape[0], columns: stored.shape[1], storage: stored.values) : nil
    }
    var fusion: ScoreFusion?
    if let fusedBlock {
      let stored = try tensor("fusion.statistics").values
      guard stored.count == 4, stored.allSatisfy(\.isFinite), stored[1] > 0, stored[3] > 0,
        blocks[fusedBlock].width == 1
      else {
        throw DetectionError(.invalidBundle, "model bundle \(path): malformed fusion statistics")
      }
      fusion = ScoreFusion(
        classifierCenter: stored[0], classifierScale: stored[1], blockCenter: stored[2],
        blockScale: stored[3], rule: configuration.classifier.fusionRule)
    }
    var chunkShift: Float?
    if configuration.chunking?.hasOwnPartThresholds == true {
      let stored = try tensor("chunking.shift").values
      guard stored.count == 1, stored[0].isFinite else {
        throw DetectionError(.invalidBundle, "model bundle \(path): malformed chunking.shift")
      }
      chunkShift = stored[0]
    }
    var segmentShift: Float?
    if configuration.chunking?.segments == true {
      let stored = try tensor("chunking.segment_shift").values
      guard stored.count == 1, stored[0].isFinite else {
        throw DetectionError(.invalidBundle, "model bundle \(path): malformed chunking.segment_shift")
      }
      segmentShift = stored[0]
    }
    var tunedLayers: [BertLayerWeights] = []
    for index in 0..<(configuration.encoderTuning?.layers ?? 0) {
      do {
        tunedLayers.append(
          try BertLayerWeights(hiddenSize: hiddenSize) { name in
            byName["encoder_tuned.\(index).\(name)"]?.values
          })
      } catch {
        throw DetectionError(
          .invalidBundle, "model bundle \(path): tuned encoder layer \(index): \(error.message)")
      }
    }
    let model = ScoringModel(
      configuration: configuration, hiddenSize: hiddenSize, featureNetwork: featureNetwork, blocks: blocks,
      featureMean: mean, featureDeviation: deviation, classifier: classifier, fusion: fusion,
      tunedLayers: tunedLayers, chunkShift: chunkShift, segmentShift: segmentShift)
    return ModelBundle(
      model: model, threshold: threshold, encoderName: metadata["encoder_name"] ?? "",
      encoderSHA256: bundleEncoder,
      corpusDigest: metadata["corpus_sha256"] ?? "",
      trainingCounts: JSONFormatting.dictionary(metadata["training_counts"]) as? [String: Int] ?? [:],
      evaluation: JSONFormatting.dictionary(metadata["evaluation"]) as? [String: Double] ?? [:],
      topicCentroids: centroids, tool: metadata["tool"] ?? "")
  }
}

/// Sorted, compact JSON text for bundle metadata.
enum JSONFormatting {
  static func text(_ value: Any) -> String {
    guard JSONSerialization.isValidJSONObject(value),
      let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
    else { return "null" }
    return String(decoding: data, as: UTF8.self)
  }

  static func dictionary(_ text: String?) -> [String: Any]? {
    guard let text, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { return nil }
    return object as? [String: Any]
  }
}
