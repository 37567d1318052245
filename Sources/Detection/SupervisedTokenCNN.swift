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
  ///   - groups: `[n]`, each prompt's group (near-duplicates share one; for grouped folds).
  ///   - load: Loads the embeddings of corpus indices.
  ///   - random: The pipeline's generator (the block forks it).
  ///   - progress: Receives epoch progress.
  mutating func train(
    indices: [Int], isAttack: [Bool], families: [String], groups: [String],
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
/// the kept token rows; a network's score is the largest logit difference
/// `logit(attack) − logit(benign)` over the windows.
///
/// With `ensemble = m`, `m` networks are trained from independent seeds; the raw rows hold every
/// member's score (`[batch, m]`) and the one feature, `supervised_cnn`, is their mean. With
/// `outOfFold`, member `i` trains on the training groups outside fold `i`, and a training prompt's
/// feature is the score of the member that held it out.
public struct SupervisedTokenCNNBlock: SupervisedFeatureBlock {
  public static let name = "supervised_cnn"
  public static let needsFeatureNetwork = false
  /// The settings (`DetectorConfiguration.supervisedCNN`, defaults when absent).
  public let settings: DetectorConfiguration.SupervisedCNN
  /// Encoder width `d`.
  public let hiddenSize: Int
  /// One raw column per ensemble member.
  public var rawWidth: Int { settings.ensemble }
  public var width: Int { 1 }
  public let wireNames = ["supervised_cnn"]
  /// The trained tensors of every member (names `block.supervised_cnn.*` for member 0,
  /// `block.supervised_cnn.member<i>.*` for member `i ≥ 1`), empty until trained or loaded.
  public private(set) var tensors: [NamedTensor] = [] {
    didSet { networkPool = ReusablePool() }
  }
  /// Networks holding `tensors`, reused across `extract` calls (a new pool when they change).
  private var networkPool = ReusablePool<NetworkSet>()
  /// During training only: the fold (`0..<ensemble`) of each training row, in the order `train`
  /// received them (empty unless `outOfFold`; not stored in bundles).
  private(set) var trainingFolds: [Int] = []

  static let prefix = "block.supervised_cnn"

  public init(context: FeatureBlockContext) {
    settings = context.configuration.supervisedCNN ?? DetectorConfiguration.SupervisedCNN()
    hiddenSize = context.hiddenSize
  }

  /// The tensor-name prefix of ensemble member `member`.
  static func prefix(member: Int) -> String {
    member == 0 ? prefix : "\(prefix).member\(member)"
  }

  /// A freshly initialised network: `[batch, crop, d]` → logits `[batch, 2]`.
  ///
  /// `meanAndMax`: `Conv1D(d → f, k, ReLU) → GlobalPooling(meanAndMax) → Dense(2f → 2)`.
  /// `logSumExp`: `Conv1D(d → f, k, ReLU) → Conv1D(f → 2, 1) → GlobalPooling(logSumExp)`: each
  /// position gets a benign and an attack logit, and each class pools its logits by log-sum-exp.
  static func architecture(
    _ settings: DetectorConfiguration.SupervisedCNN, hiddenSize: Int, member: Int = 0,
    random: inout NetworkRandom
  ) -> Sequential {
    let prefix = prefix(member: member)
    let convolution = Conv1D(
      name: "\(prefix).conv", inputChannels: hiddenSize, outputChannels: settings.filters,
      kernelSize: settings.kernelSize(member: member), activation: .relu, random: &random)
    guard settings.pooling == "logSumExp" else {
      return Sequential([
        convolution,
        GlobalPooling(mode: .meanAndMax),
        Dense(
          name: "\(prefix).output", inputFeatures: 2 * settings.filters, outputFeatures: 2, random: &random),
      ])
    }
    return Sequential([
      convolution,
      Conv1D(
        name: "\(prefix).output", inputChannels: settings.filters, outputChannels: 2, kernelSize: 1,
        random: &random),
      GlobalPooling(mode: .logSumExp),
    ])
  }

  /// The pooling layer of a network made by `architecture`.
  static func pooling(of network: Sequential) throws(DetectionError) -> GlobalPooling {
    guard let pooling = network.layers.lazy.compactMap({ $0 as? GlobalPooling }).first else {
      throw DetectionError(.internalError, "supervised_cnn: the network has no pooling layer")
    }
    return pooling
  }

  /// The rows the networks read for one prompt (`settings.rows`): the encoder's last hidden state
  /// (`encoder`) or the context-free rows of its tokens (`lexical`), `[rows, d]`.
  ///
  /// - Throws: `DetectionError(.invalidInput)` for `lexical` rows of an embedding without a lexicon.
  static func inputRows(_ embedding: PromptEmbedding, rows: String) throws(DetectionError) -> Matrix {
    guard rows == "lexical" else { return embedding.hidden }
    guard let lexical = try embedding.lexicalRows() else {
      throw DetectionError(
        .invalidInput, "supervised_cnn reads lexical rows, but the embeddings carry no encoder lexicon")
    }
    return lexical
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

  /// The fold (`0..<folds`) of a group: a stable FNV-1a hash of its text.
  package static func fold(ofGroup group: String, folds: Int) -> Int {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in group.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return Int((hash >> 11) % UInt64(max(folds, 1)))
  }

  /// Training weights `[n]`: the two classes balanced; within attacks, each family weighs in
  /// proportion to √(its size), so each attack weighs `1/√(family size)` up to a constant.
  package static func sampleWeights(isAttack: [Bool], families: [String]) -> [Float] {
    let attacks = isAttack.filter { $0 }.count
    let benign = isAttack.count - attacks
    var familySizes: [String: Int] = [:]
    for (attack, family) in zip(isAttack, families) where attack { familySizes[family, default: 0] += 1 }
    let raw = zip(isAttack, families).map { attack, family in
      attack ? 1 / Float(familySizes[family] ?? 1).squareRoot() : 0
    }
    let rawSum = max(raw.reduce(0, +), .leastNormalMagnitude)
    let total = Float(isAttack.count)
    return zip(isAttack, raw).map { attack, value in
      attack ? total / 2 * value / rawSum : total / (2 * Float(max(benign, 1)))
    }
  }

  /// Averages member scores `[rows, members]` into the feature `[rows, 1]`; a row with a fold in
  /// `folds` (out-of-fold training rows) takes that member's score instead.
  ///
  /// - Parameters:
  ///   - raw: `[rows, members]`.
  ///   - folds: `[rows]`, the held-out member of each row, or `nil` for the mean.
  package static func combine(_ raw: Matrix, folds: [Int?]) -> Matrix {
    let members = raw.columns
    var result = [Float](repeating: 0, count: raw.rows)
    for row in 0..<raw.rows {
      if row < folds.count, let fold = folds[row], fold >= 0, fold < members {
        result[row] = raw.storage[row * members + fold]
      } else if members > 0 {
        var sum: Float = 0
        for member in 0..<members { sum += raw.storage[row * members + member] }
        result[row] = sum / Float(members)
      }
    }
    return Matrix(rows: raw.rows, columns: 1, storage: result)
  }

  public mutating func train(
    indices: [Int], isAttack: [Bool], families: [String], groups: [String],
    load: (ArraySlice<Int>) throws(DetectionError) -> [PromptEmbedding], random: inout NetworkRandom,
    progress: ProgressReporter?
  ) throws(DetectionError) {
    guard isAttack.contains(true), isAttack.contains(false) else {
      throw DetectionError(.invalidInput, "supervised_cnn needs benign and attack training prompts")
    }
    let members = settings.ensemble
    let folds = settings.outOfFold ? groups.map { Self.fold(ofGroup: $0, folds: members) } : []
    var trained: [NamedTensor] = []
    for member in 0..<members {
      let kept = settings.outOfFold ? indices.indices.filter { folds[$0] != member } : Array(indices.indices)
      let keptAttack = kept.map { isAttack[$0] }
      guard keptAttack.contains(true), keptAttack.contains(false) else {
        throw DetectionError(
          .invalidInput, "supervised_cnn member \(member + 1): its folds lack benign or attack prompts")
      }
      trained += try trainMember(
        member, indices: kept.map { indices[$0] }, isAttack: keptAttack,
        weights: Self.sampleWeights(isAttack: keptAttack, families: kept.map { families[$0] }),
        load: load, random: &random, progress: progress)
    }
    tensors = trained
    trainingFolds = folds
  }

  /// Trains one member on `indices` and returns its tensors.
  private func trainMember(
    _ member: Int, indices: [Int], isAttack: [Bool], weights: [Float],
    load: (ArraySlice<Int>) throws(DetectionError) -> [PromptEmbedding], random: inout NetworkRandom,
    progress: ProgressReporter?
  ) throws(DetectionError) -> [NamedTensor] {
    var generator = random.fork()
    let network = Self.architecture(settings, hiddenSize: hiddenSize, member: member, random: &generator)
    let pooling = try Self.pooling(of: network)
    let optimizer = Adam(parameters: network.parameters, learningRate: settings.learningRate, l2: settings.l2)
    let crop = settings.crop
    let d = hiddenSize
    let chunk = DetectorTraining.chunkSize
    let label = settings.ensemble > 1 ? "supervised_cnn \(member + 1)/\(settings.ensemble)" : "supervised_cnn"
    for epoch in 0..<settings.epochs {
      var order = Array(indices.indices)
      for i in stride(from: order.count - 1, to: 0, by: -1) {
        order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
      }
      progress?.begin("\(label) epoch \(epoch + 1)/\(settings.epochs)", total: order.count)
      var lossSum: Double = 0
      var batches = 0
      var start = 0
      while start < order.count {
        let positions = order[start..<min(start + chunk, order.count)]
        var inputs: [Matrix] = []
        for embedding in try load(ArraySlice(positions.map { indices[$0] })) {
          inputs.append(try Self.inputRows(embedding, rows: settings.rows))
        }
        var batchStart = 0
        while batchStart < positions.count {
          let batchEnd = min(batchStart + settings.batchSize, positions.count)
          let size = batchEnd - batchStart
          // `logSumExp` networks pad only to the batch's longest crop (at least the kernel width);
          // `meanAndMax` keeps padding to `crop`, so existing configurations train the same bytes.
          var length = crop
          if settings.pooling == "logSumExp" {
            let longest = (0..<size).map { inputs[batchStart + $0].rows }.max() ?? 0
            length = min(crop, max(longest, settings.kernelSize(member: member)))
          }
          var storage = [Float](repeating: 0, count: size * length * d)
          var lengths: [Int] = []
          var labels: [Int] = []
          var sampleWeights: [Float] = []
          for item in 0..<size {
            let position = positions[positions.startIndex + batchStart + item]
            let hidden = inputs[batchStart + item]
            let slack = hidden.rows - crop
            let offset = slack > 0 ? Int(generator.next() % UInt64(slack + 1)) : 0
            lengths.append(
              Self.fill(
                &storage, item: item, hidden: hidden, start: offset, crop: length,
                kernelSize: settings.kernelSize(member: member)))
            labels.append(isAttack[position] ? 1 : 0)
            sampleWeights.append(weights[position])
          }
          do {
            try pooling.setValidLengths(lengths)
            let logits = network.forward(Tensor(shape: [size, length, d], storage: storage), training: true)
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
        String(format: "%@ epoch %d: loss %.4f", label, epoch + 1, lossSum / Double(max(batches, 1))))
    }
    return network.exportTensors()
  }

  /// Networks holding every member's trained weights.
  func makeNetworks() throws(DetectionError) -> [Sequential] {
    var networks: [Sequential] = []
    for member in 0..<settings.ensemble {
      var random = NetworkRandom(seed: 0)
      let network = Self.architecture(settings, hiddenSize: hiddenSize, member: member, random: &random)
      do {
        try network.importTensors(tensors)
      } catch {
        throw DetectionError(.invalidBundle, "supervised_cnn member \(member): \(error.message)")
      }
      networks.append(network)
    }
    return networks
  }

  /// Largest window logit difference per prompt and member, `[batch, ensemble]` (zeros when
  /// untrained).
  ///
  /// - Complexity: per window of `w ≤ crop` rows (padded to the longest window of its batch of
  ///   64), `2 · w · d · f · Σ kernel widths` flops for the convolutions.
  public func extract(_ batch: FeatureBatch) -> Matrix {
    let members = settings.ensemble
    guard !tensors.isEmpty,
      let set = try? networkPool.take(orMake: { () throws(DetectionError) in NetworkSet(try makeNetworks()) })
    else {
      return Matrix(rows: batch.count, columns: members)
    }
    defer { networkPool.give(set) }
    let networks = set.networks
    let crop = settings.crop
    let d = hiddenSize
    // A prompt whose rows cannot be made (an embedding without a lexicon) reads as having no rows.
    let inputs = batch.embeddings.map { embedding in
      (try? Self.inputRows(embedding, rows: settings.rows)) ?? Matrix(rows: 0, columns: d)
    }
    var windows: [(item: Int, start: Int)] = []
    for (item, input) in inputs.enumerated() {
      for start in Self.windowStarts(rows: input.rows, crop: crop) {
        windows.append((item, start))
      }
    }
    var best = [Float](repeating: -Float.greatestFiniteMagnitude, count: batch.count * members)
    let widestKernel = (0..<members).map { settings.kernelSize(member: $0) }.max() ?? settings.kernelSize
    let step = 64
    var first = 0
    while first < windows.count {
      let part = windows[first..<min(first + step, windows.count)]
      // Rows per window; the batch is only as long as its longest window (at least the widest
      // kernel): padding rows lie outside every valid position, so the scores do not change.
      let rows = part.map { max(0, min(crop, inputs[$0.item].rows - $0.start)) }
      let length = min(crop, max(rows.max() ?? 0, widestKernel))
      var storage = [Float](repeating: 0, count: part.count * length * d)
      for (slot, window) in part.enumerated() {
        _ = Self.fill(
          &storage, item: slot, hidden: inputs[window.item], start: window.start,
          crop: length, kernelSize: 1)
      }
      let input = Tensor(shape: [part.count, length, d], storage: storage)
      for (member, network) in networks.enumerated() {
        let kernelSize = settings.kernelSize(member: member)
        guard let pooling = try? Self.pooling(of: network),
          (try? pooling.setValidLengths(rows.map { max(0, $0 - kernelSize + 1) })) != nil
        else { continue }
        let logits = network.forward(input, training: false)
        for (slot, window) in part.enumerated() {
          let index = window.item * members + member
          best[index] = max(best[index], logits.storage[slot * 2 + 1] - logits.storage[slot * 2])
        }
      }
      first += part.count
    }
    return Matrix(rows: batch.count, columns: members, storage: best.map { $0.isFinite ? $0 : 0 })
  }

  /// The mean of the members' scores, `[rows, 1]`; out-of-fold training rows take the score of
  /// the member that held them out.
  public func transform(_ raw: Matrix, trainingRows: [Int?]) throws(DetectionError) -> Matrix {
    guard raw.columns == settings.ensemble else {
      throw DetectionError(
        .internalError, "supervised_cnn: \(raw.columns) raw columns for \(settings.ensemble) members")
    }
    let folds = trainingRows.map { row -> Int? in
      guard let row, row >= 0, row < trainingFolds.count else { return nil }
      return trainingFolds[row]
    }
    return Self.combine(raw, folds: folds)
  }

  public func exportTensors() -> [NamedTensor] { tensors }

  public mutating func load(_ tensors: [String: NamedTensor]) throws(DetectionError) {
    let stored = tensors.values.filter { $0.name.hasPrefix(Self.prefix + ".") }.sorted { $0.name < $1.name }
    guard !stored.isEmpty else {
      throw DetectionError(.invalidBundle, "tensors '\(Self.prefix).*' are missing")
    }
    self.tensors = stored
    _ = try makeNetworks()
  }
}

/// The networks of every ensemble member, for one `extract` call at a time.
final class NetworkSet: @unchecked Sendable {
  let networks: [Sequential]

  init(_ networks: [Sequential]) {
    self.networks = networks
  }
}
