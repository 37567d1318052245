import Foundation
import LinearAlgebra
import NeuralNetwork

/// A feature block trained on labelled prompts before any row is extracted (its `extract` needs
/// the trained weights). The training pipeline calls `train` once, on the training split, before
/// the raw rows of every example are computed.
public protocol SupervisedFeatureBlock: FeatureBlock {
  /// Trains the block.
  ///
  /// - Parameters:
  ///   - indices: Corpus indices of the training prompts, `[n]`.
  ///   - isAttack: `[n]`, whether each prompt is a positive.
  ///   - families: `[n]`, each prompt's family (for family-balanced weights).
  ///   - load: Loads the embeddings of corpus indices.
  ///   - random: The pipeline's generator (the block forks it).
  ///   - progress: Receives epoch progress.
  mutating func train(
    indices: [Int], isAttack: [Bool], families: [String],
    load: (ArraySlice<Int>) throws(DetectionError) -> [PromptEmbedding], random: inout NetworkRandom,
    progress: ProgressReporter?
  ) throws(DetectionError)
}

/// A supervised 1-D CNN over the token-embedding matrix (issue 6): `[crop, d]` token rows →
/// `Conv1D(d → f, k, ReLU)` → `GlobalPooling(meanAndMax)` over valid positions → `Dense(2f → 2)`.
///
/// Trained benign vs attack on random crops of at most `crop` tokens (so length is no shortcut;
/// the crop position is seeded), benign and attack classes balanced, attack loss weighted by
/// `1/√(family size)`. At inference it scores sliding `crop`-token windows (stride `crop/2`) over
/// the kept token rows and reports the largest logit difference `logit(attack) − logit(benign)`
/// as its one feature, `supervised_cnn`.
public struct SupervisedTokenCNNBlock: SupervisedFeatureBlock {
  public static let name = "supervised_cnn"
  public static let needsFeatureNetwork = false
  /// The settings (`DetectorConfiguration.supervisedCNN`, defaults when absent).
  public let settings: DetectorConfiguration.SupervisedCNN
  /// Encoder width `d`.
  public let hiddenSize: Int
  public let rawWidth = 1
  public let wireNames = ["supervised_cnn"]
  /// The trained tensors (names `block.supervised_cnn.*`), empty until trained or loaded.
  public private(set) var tensors: [NamedTensor] = []

  static let prefix = "block.supervised_cnn"

  public init(context: FeatureBlockContext) {
    settings = context.configuration.supervisedCNN ?? DetectorConfiguration.SupervisedCNN()
    hiddenSize = context.hiddenSize
  }

  /// A freshly initialised network: `[batch, crop, d]` → logits `[batch, 2]`.
  static func architecture(
    _ settings: DetectorConfiguration.SupervisedCNN, hiddenSize: Int, random: inout NetworkRandom
  ) -> Sequential {
    Sequential([
      Conv1D(
        name: "\(prefix).conv", inputChannels: hiddenSize, outputChannels: settings.filters,
        kernelSize: settings.kernelSize, activation: .relu, random: &random),
      GlobalPooling(mode: .meanAndMax),
      Dense(
        name: "\(prefix).output", inputFeatures: 2 * settings.filters, outputFeatures: 2, random: &random),
    ])
  }

  /// Copies up to `crop` rows starting at `start` of `hidden` into `storage` at item `item`
  /// (`[items, crop, d]`, zero padded) and returns the valid convolution positions.
  static func fill(
    _ storage: inout [Float], item: Int, hidden: Matrix, start: Int, crop: Int, kernelSize: Int
  ) -> Int {
    let d = hidden.columns
    let rows = max(0, min(crop, hidden.rows - start))
    if rows > 0 {
      let base = item * crop * d
      hidden.storage.withUnsafeBufferPointer { source in
        storage.withUnsafeMutableBufferPointer { target in
          for offset in 0..<(rows * d) { target[base + offset] = source[start * d + offset] }
        }
      }
    }
    return max(0, rows - kernelSize + 1)
  }

  /// Window starts for `rows` token rows: `0, stride, …`, the last ending at the last row.
  static func windowStarts(rows: Int, crop: Int) -> [Int] {
    guard rows > crop else { return [0] }
    let stride = max(1, crop / 2)
    var starts = Array(Swift.stride(from: 0, to: rows - crop, by: stride))
    starts.append(rows - crop)
    return starts
  }

  public mutating func train(
    indices: [Int], isAttack: [Bool], families: [String],
    load: (ArraySlice<Int>) throws(DetectionError) -> [PromptEmbedding], random: inout NetworkRandom,
    progress: ProgressReporter?
  ) throws(DetectionError) {
    let attacks = isAttack.filter { $0 }.count
    let benign = isAttack.count - attacks
    guard attacks > 0, benign > 0 else {
      throw DetectionError(.invalidInput, "supervised_cnn needs benign and attack training prompts")
    }
    // Class-balanced weights; within attacks, each family weighs in proportion to √(its size).
    var familySizes: [String: Int] = [:]
    for (attack, family) in zip(isAttack, families) where attack { familySizes[family, default: 0] += 1 }
    let raw = zip(isAttack, families).map { attack, family in
      attack ? 1 / Float(familySizes[family] ?? 1).squareRoot() : 0
    }
    let rawSum = raw.reduce(0, +)
    let total = Float(isAttack.count)
    let weights = zip(isAttack, raw).map { attack, value in
      attack ? total / 2 * value / rawSum : total / (2 * Float(benign))
    }

    var generator = random.fork()
    let network = Self.architecture(settings, hiddenSize: hiddenSize, random: &generator)
    guard let pooling = network.layers[1] as? GlobalPooling else {
      throw DetectionError(.internalError, "supervised_cnn: unexpected architecture")
    }
    let optimizer = Adam(parameters: network.parameters, learningRate: settings.learningRate, l2: settings.l2)
    let crop = settings.crop
    let d = hiddenSize
    let chunk = DetectorTraining.chunkSize
    for epoch in 0..<settings.epochs {
      var order = Array(indices.indices)
      for i in stride(from: order.count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
      }
      progress?.begin("supervised_cnn epoch \(epoch + 1)/\(settings.epochs)", total: order.count)
      var lossSum: Double = 0
      var batches = 0
      var start = 0
      while start < order.count {
        let positions = order[start..<min(start + chunk, order.count)]
        let embeddings = try load(ArraySlice(positions.map { indices[$0] }))
        var batchStart = 0
        while batchStart < positions.count {
          let batchEnd = min(batchStart + settings.batchSize, positions.count)
          let size = batchEnd - batchStart
          var storage = [Float](repeating: 0, count: size * crop * d)
          var lengths: [Int] = []
          var labels: [Int] = []
          var sampleWeights: [Float] = []
          for item in 0..<size {
            let position = positions[positions.startIndex + batchStart + item]
            let hidden = embeddings[batchStart + item].hidden
            let slack = hidden.rows - crop
            let offset = slack > 0 ? Int(generator.next() % UInt64(slack + 1)) : 0
            lengths.append(
              Self.fill(
                &storage, item: item, hidden: hidden, start: offset, crop: crop,
                kernelSize: settings.kernelSize))
            labels.append(isAttack[position] ? 1 : 0)
            sampleWeights.append(weights[position])
          }
          do {
            try pooling.setValidLengths(lengths)
            let logits = network.forward(Tensor(shape: [size, crop, d], storage: storage), training: true)
            let result = try softmaxCrossEntropy(logits: logits, labels: labels, sampleWeights: sampleWeights)
            network.backward(result.gradient)
            optimizer.step()
            lossSum += Double(result.loss)
            batches += 1
          } catch {
            throw DetectionError(.internalError, "supervised_cnn training failed: \(error.message)")
          }
          batchStart = batchEnd
        }
        start += positions.count
        progress?.update(start)
      }
      progress?.finish()
      progress?.note(
        String(format: "supervised_cnn epoch %d: loss %.4f", epoch + 1, lossSum / Double(max(batches, 1))))
    }
    tensors = network.exportTensors()
  }

  /// A network holding the trained weights.
  func makeNetwork() throws(DetectionError) -> Sequential {
    var random = NetworkRandom(seed: 0)
    let network = Self.architecture(settings, hiddenSize: hiddenSize, random: &random)
    do {
      try network.importTensors(tensors)
    } catch {
      throw DetectionError(.invalidBundle, "supervised_cnn: \(error.message)")
    }
    return network
  }

  /// Largest window logit difference per prompt, `[batch, 1]` (zeros when untrained).
  public func extract(_ batch: FeatureBatch) -> Matrix {
    guard !tensors.isEmpty, let network = try? makeNetwork(),
      let pooling = network.layers[1] as? GlobalPooling
    else { return Matrix(rows: batch.count, columns: 1) }
    let crop = settings.crop
    let d = hiddenSize
    var windows: [(item: Int, start: Int)] = []
    for (item, embedding) in batch.embeddings.enumerated() {
      for start in Self.windowStarts(rows: embedding.hidden.rows, crop: crop) {
        windows.append((item, start))
      }
    }
    var best = [Float](repeating: -Float.greatestFiniteMagnitude, count: batch.count)
    let step = 64
    var first = 0
    while first < windows.count {
      let part = windows[first..<min(first + step, windows.count)]
      var storage = [Float](repeating: 0, count: part.count * crop * d)
      var lengths: [Int] = []
      for (slot, window) in part.enumerated() {
        lengths.append(
          Self.fill(
            &storage, item: slot, hidden: batch.embeddings[window.item].hidden, start: window.start,
            crop: crop,
            kernelSize: settings.kernelSize))
      }
      guard (try? pooling.setValidLengths(lengths)) != nil else { break }
      let logits = network.forward(Tensor(shape: [part.count, crop, d], storage: storage), training: false)
      for (slot, window) in part.enumerated() {
        best[window.item] = max(best[window.item], logits.storage[slot * 2 + 1] - logits.storage[slot * 2])
      }
      first += part.count
    }
    return Matrix(rows: batch.count, columns: 1, storage: best.map { $0.isFinite ? $0 : 0 })
  }

  public func exportTensors() -> [NamedTensor] { tensors }

  public mutating func load(_ tensors: [String: NamedTensor]) throws(DetectionError) {
    let stored = tensors.values.filter { $0.name.hasPrefix(Self.prefix + ".") }.sorted { $0.name < $1.name }
    guard !stored.isEmpty else {
      throw DetectionError(.invalidBundle, "tensors '\(Self.prefix).*' are missing")
    }
    self.tensors = stored
    _ = try makeNetwork()
  }
}
