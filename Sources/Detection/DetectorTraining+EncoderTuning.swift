import Embeddings
import EncoderTuning
import Foundation
import LinearAlgebra

extension DetectorTraining {
  /// The provider whose cache training fills first (`train --embed-only`): the frozen states
  /// below the tuned layers when `configuration.encoderTuning` is set, else `embeddings` itself.
  /// - Throws: `DetectionError(.invalidInput)` when the encoder has fewer layers than tuning asks.
  public static func firstEmbeddings(
    for configuration: DetectorConfiguration, embeddings: EmbeddingProvider
  ) throws(DetectionError) -> EmbeddingProvider {
    guard let tuning = configuration.encoderTuning else { return embeddings }
    return try frozenStates(below: tuning.layers, embeddings: embeddings)
  }

  /// The provider of the frozen states below the top `tunedLayers` layers.
  /// - Throws: `DetectionError(.invalidInput)` when the encoder has fewer layers.
  static func frozenStates(
    below tunedLayers: Int, embeddings: EmbeddingProvider
  ) throws(DetectionError) -> EmbeddingProvider {
    let layers = embeddings.encoder.model.layers.count
    guard tunedLayers <= layers else {
      throw DetectionError(.invalidInput, "encoderTuning.layers is \(tunedLayers); the encoder has \(layers)")
    }
    return try embeddings.frozenStates(layerCount: layers - tunedLayers)
  }

  /// The fine-tuned top layers and the provider of the tuned encoder's rows.
  struct TunedEncoder {
    let layers: [BertLayerWeights]
    let provider: EmbeddingProvider
    let embedded: Int
    let seconds: Double
  }

  /// Fine-tunes the encoder's top layers on the training split (`EncoderFineTuning`), then fills
  /// the tuned rows of every record the rest of training reads.
  ///
  /// Loss weights: the attack class and the benign class weigh the same in total; within the
  /// attacks, a family of `n` training prompts weighs `1/√n` per prompt, so the large template
  /// and in-the-wild families do not decide alone what an attack is.
  /// - Parameters:
  ///   - settings: The tuning settings.
  ///   - train: Training record indices.
  ///   - everything: Every record the detector will read (training, validation, test).
  ///   - isPositive: Whether a record is an attack.
  /// - Throws: `DetectionError` from the encoder, the caches or training.
  static func tuneEncoder(
    _ settings: DetectorConfiguration.EncoderTuning, seed: UInt64, corpus: Corpus, train: [Int],
    everything: [Int], isPositive: (Int) -> Bool, embeddings: EmbeddingProvider, progress: ProgressReporter?
  ) throws(DetectionError) -> TunedEncoder {
    let records = corpus.records
    let model = embeddings.encoder.model
    let states = try frozenStates(below: settings.layers, embeddings: embeddings)
    let frozenCount = model.layers.count - settings.layers
    progress?.note("encoder tuning: frozen states after \(frozenCount) of \(model.layers.count) layers")
    let filled = try states.fill(everything.map { records[$0].text }, progress: progress)

    var familySizes: [String: Int] = [:]
    for index in train where isPositive(index) { familySizes[records[index].family, default: 0] += 1 }
    let benignCount = train.filter { !isPositive($0) }.count
    let attackMass = familySizes.reduce(0.0) { $0 + Double($1.value).squareRoot() }
    let half = Double(train.count) / 2
    let weights = train.map { index -> Float in
      if isPositive(index) {
        let size = Double(familySizes[records[index].family] ?? 1)
        return Float(half / attackMass / size.squareRoot())
      }
      return Float(half / Double(max(benignCount, 1)))
    }
    let tuningSettings = FineTuningSettings(
      layers: settings.layers, epochs: settings.epochs, crop: settings.crop, batchSize: settings.batchSize,
      learningRate: settings.learningRate, headLearningRate: settings.headLearningRate, seed: seed)
    progress?.note(
      "encoder tuning: \(settings.layers) layer(s), \(train.count) prompts, \(settings.epochs) epochs, "
        + "\(settings.crop)-row crops")
    let result: EncoderFineTuning.Result
    do {
      result = try EncoderFineTuning.train(
        encoder: model, settings: tuningSettings, count: train.count, isAttack: train.map(isPositive),
        weights: weights,
        states: { batch in try states.embed(batch.map { records[train[$0]].text }).map(\.hidden) },
        epochDone: { epoch, loss in
          progress?.note("encoder tuning: epoch \(epoch) mean loss \(String(format: "%.4f", loss))")
        })
    } catch {
      throw DetectionError(.internalError, "encoder tuning failed: \(error.message)")
    }
    let provider = try embeddings.adapted(
      tunedLayers: result.layers, hiddenSize: model.configuration.hiddenSize)
    try provider.fill(
      everything.map { records[$0].text }, from: states, fromLayer: frozenCount, progress: progress)
    return TunedEncoder(
      layers: result.layers, provider: provider, embedded: filled.embedded, seconds: filled.seconds)
  }
}
