import Embeddings
import Foundation

extension ScoringModel {
  /// The wire name of the largest chunk score (a reply feature when the prompt has chunks).
  public static let chunkScoreName = "chunk_score"

  /// Chunk embeddings scored per model call (bounds memory: about 256 × 130 × hidden floats).
  static let chunksPerCall = 256

  /// The largest score over the chunks of each text (`configuration.chunking`).
  ///
  /// - Parameters:
  ///   - texts: The prompts.
  ///   - embeddings: The provider the model reads (adapted to it, see `EmbeddingProvider.adapted(to:)`).
  /// - Returns: Per text, the largest chunk score, or `nil` when the model has no chunking or the
  ///   text is no longer than one chunk.
  /// - Throws: `DetectionError` from the encoder, the cache or the model.
  public func chunkScores(_ texts: [String], embeddings: EmbeddingProvider) throws(DetectionError) -> [Float?]
  {
    var result = [Float?](repeating: nil, count: texts.count)
    guard let chunking = configuration.chunking else { return result }
    var start = 0
    while start < texts.count {
      // Whole texts per call, about `chunksPerCall` chunks at a time (at least one text).
      var end = start
      var inputs: [[(start: Int, ids: [Int])]] = []
      var count = 0
      while end < texts.count, end == start || count < Self.chunksPerCall {
        inputs.append(embeddings.chunkInputs(texts[end], chunking: chunking))
        count += inputs[inputs.count - 1].count
        end += 1
      }
      let chunks = try embeddings.embedChunks(Array(texts[start..<end]), inputs: inputs)
      let flat = chunks.flatMap { $0 }
      var owners: [Int] = []
      for (offset, list) in chunks.enumerated() {
        owners += Array(repeating: start + offset, count: list.count)
      }
      var position = 0
      while position < flat.count {
        let stop = min(position + Self.chunksPerCall, flat.count)
        let evaluations = try evaluate(Array(flat[position..<stop]), explain: false)
        for (owner, evaluation) in zip(owners[position..<stop], evaluations) {
          result[owner] = max(result[owner] ?? -.infinity, evaluation.score)
        }
        position = stop
      }
      start = end
    }
    return result
  }

  /// A chunk score on the whole-prompt scale: `σ(logit(c) + shift)` (`chunkShift`), or `c`.
  package static func shifted(_ chunkScore: Float, by shift: Float?) -> Float {
    guard let shift else { return chunkScore }
    return 1 / (1 + exp(-(ScoreFusion.logit(chunkScore) + shift)))
  }

  /// The logit shift that maps the chunk threshold `chunkThreshold` onto `threshold`.
  package static func shift(mapping chunkThreshold: Float, onto threshold: Float) -> Float {
    ScoreFusion.logit(threshold) - ScoreFusion.logit(chunkThreshold)
  }

  /// Whole-prompt evaluations with their chunk scores folded in: the chunk score is put on the
  /// whole-prompt scale (`chunkShift`, when the model has one), the score becomes the larger of
  /// the two, and the (scaled) chunk score is reported as the feature `chunk_score`.
  ///
  /// - Parameters:
  ///   - evaluations: Whole-prompt evaluations, `[n]`.
  ///   - chunkScores: From `chunkScores(_:embeddings:)`, `[n]`.
  func merging(_ evaluations: [PromptEvaluation], chunkScores: [Float?]) -> [PromptEvaluation] {
    zip(evaluations, chunkScores).map { evaluation, raw in
      guard let raw else { return evaluation }
      let chunkScore = Self.shifted(raw, by: chunkShift)
      var merged = evaluation
      merged.score = max(evaluation.score, chunkScore)
      merged.features.append(Decision.Feature(name: Self.chunkScoreName, value: chunkScore))
      return merged
    }
  }

  /// Scores prompts the way the model decides them: the whole prompt, and with
  /// `configuration.chunking` each chunk too (`merging(_:chunkScores:)`).
  ///
  /// - Parameters:
  ///   - texts: The prompts.
  ///   - embeddings: The provider the model reads (adapted to it).
  /// - Returns: One evaluation per text.
  /// - Throws: `DetectionError` from the encoder, the cache or the model.
  public func evaluate(texts: [String], embeddings: EmbeddingProvider) throws(DetectionError)
    -> [PromptEvaluation]
  {
    let whole = try evaluate(try embeddings.embed(texts), explain: false)
    guard configuration.chunking != nil else { return whole }
    return merging(whole, chunkScores: try chunkScores(texts, embeddings: embeddings))
  }
}
