import Embeddings
import Foundation
import LinearAlgebra

extension EmbeddingProvider {
  /// The provider a model reads its embeddings from: this one for a model on the frozen encoder;
  /// for a model with fine-tuned top layers (`ScoringModel.tunedLayers`), the encoder with those
  /// layers, cached (when this provider caches) beside this provider's cache under
  /// `<cache>-tuned-<first 16 hex of the layers' digest>`, so tuned and frozen rows never mix.
  /// - Throws: `DetectionError(.invalidBundle)` when the tuned layers do not fit the encoder.
  public func adapted(to model: ScoringModel) throws(DetectionError) -> EmbeddingProvider {
    try adapted(tunedLayers: model.tunedLayers, hiddenSize: model.hiddenSize)
  }

  /// `adapted(to:)` for layers not yet in a model.
  func adapted(tunedLayers: [BertLayerWeights], hiddenSize: Int) throws(DetectionError) -> EmbeddingProvider {
    guard !tunedLayers.isEmpty else { return self }
    let text: TextEncoder
    do {
      text = try TextEncoder(
        tokenizer: encoder.tokenizer, model: try encoder.model.replacingTopLayers(with: tunedLayers))
    } catch {
      throw DetectionError(
        .invalidBundle, "the model's tuned encoder layers do not fit the encoder: \(error.message)")
    }
    // The digest names the cache only; a provider without a cache (the `Detector`) skips it.
    return EmbeddingProvider(
      encoder: text,
      cache: cache.map {
        let digest = EmbeddingCache.tunedDigest(of: tunedLayers, hiddenSize: hiddenSize)
        return EmbeddingCache(directory: EmbeddingCache.directory(of: .tuned(digest), base: $0.directory))
      },
      maxWindows: maxWindows)
  }

  /// A provider of the encoder's hidden states after its bottom `layerCount` layers (the frozen
  /// input of fine-tuning), cached beside this provider's cache under `<cache>-layers<k>`.
  /// - Throws: `DetectionError(.invalidInput)` for a layer count the encoder does not have.
  func frozenStates(layerCount: Int) throws(DetectionError) -> EmbeddingProvider {
    do {
      let bottom = try encoder.model.keepingBottomLayers(layerCount)
      return EmbeddingProvider(
        encoder: try TextEncoder(tokenizer: encoder.tokenizer, model: bottom),
        cache: cache.map {
          EmbeddingCache(directory: EmbeddingCache.directory(of: .layers(layerCount), base: $0.directory))
        },
        maxWindows: maxWindows)
    } catch {
      throw DetectionError(.invalidInput, "encoder tuning: \(error.message)")
    }
  }

  /// Caches the rows of `texts` that this (tuned) provider is missing by running its top layers
  /// on the frozen states `states` provides (one partial pass instead of a full one).
  /// - Parameters:
  ///   - texts: The prompts.
  ///   - states: The frozen-states provider (`frozenStates(layerCount:)`).
  ///   - fromLayer: The first tuned layer.
  ///   - progress: Receives progress.
  /// - Throws: `DetectionError` from the encoder or the caches.
  func fill(
    _ texts: [String], from states: EmbeddingProvider, fromLayer: Int, progress: ProgressReporter?
  ) throws(DetectionError) {
    guard let cache else { return }
    var seen = Set<String>()
    let missing = texts.filter {
      seen.insert($0).inserted
        && !FileManager.default.fileExists(atPath: cache.url(forText: $0, maxWindows: maxWindows).path)
    }
    guard !missing.isEmpty else { return }
    progress?.begin("tuned rows", total: missing.count)
    var start = 0
    while start < missing.count {
      let end = min(start + 64, missing.count)
      let batch = Array(missing[start..<end])
      let frozen = try states.embed(batch)
      let rows: [Matrix]
      do {
        rows = try encoder.model.continueEncoding(frozen.map(\.hidden), fromLayer: fromLayer)
      } catch {
        throw DetectionError(.internalError, "the tuned encoder failed: \(error.message)")
      }
      for (index, text) in batch.enumerated() {
        let embedding = PromptEmbedding(
          ids: frozen[index].ids, hidden: rows[index], totalTokens: frozen[index].totalTokens,
          lexicon: encoder.model)
        try cache.store(embedding, text: text, maxWindows: maxWindows)
      }
      start = end
      progress?.update(start)
    }
    progress?.finish()
  }
}
