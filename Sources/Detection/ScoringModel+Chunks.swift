import Embeddings
import Foundation

extension ScoringModel {
  /// The wire name of the largest chunk score (a reply feature when the prompt has chunks).
  public static let chunkScoreName = "chunk_score"

  /// Chunk embeddings scored per model call (bounds memory: about 256 × 130 × hidden floats).
  static let chunksPerCall = 256

  /// The wire name of the largest segment score (a reply feature when the prompt has segments).
  public static let segmentScoreName = "segment_score"

  /// The largest raw scores over the parts of one prompt that are encoded on their own.
  public struct PartScores: Sendable, Equatable {
    /// The largest chunk score (`nil`: the prompt has no chunks, or the model no chunking).
    public var chunk: Float?
    /// The largest segment score (`nil`: fewer than two segments, or the model reads none).
    public var segment: Float?

    /// Part scores.
    public init(chunk: Float? = nil, segment: Float? = nil) {
      self.chunk = chunk
      self.segment = segment
    }
  }

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
    guard configuration.chunking != nil else { return Array(repeating: nil, count: texts.count) }
    return try chunkScores(
      texts, readings: Self.readings(texts, embeddings: embeddings), embeddings: embeddings)
  }

  /// `chunkScores(_:embeddings:)` with each text's reading already found (`readings`, `[n]`).
  private func chunkScores(_ texts: [String], readings: [String?], embeddings: EmbeddingProvider)
    throws(DetectionError) -> [Float?]
  {
    guard let chunking = configuration.chunking else { return Array(repeating: nil, count: texts.count) }
    let inputs = zip(texts, readings).map { embeddings.chunkInputs($0, reading: $1, chunking: chunking) }
    return try largestScores(
      texts, inputs: inputs, embeddings: embeddings, cacheKey: EmbeddingProvider.chunkKey)
  }

  /// The largest score over the segments of each text (`Chunking.segments`).
  ///
  /// - Returns: Per text, the largest segment score, or `nil` when the model reads no segments or
  ///   the text has fewer than two.
  /// - Throws: `DetectionError` from the encoder, the cache or the model.
  public func segmentScores(_ texts: [String], embeddings: EmbeddingProvider) throws(DetectionError)
    -> [Float?]
  {
    guard let chunking = configuration.chunking, chunking.segments else {
      return Array(repeating: nil, count: texts.count)
    }
    return try segmentScores(
      texts, readings: Self.readings(texts, embeddings: embeddings), embeddings: embeddings)
  }

  /// `segmentScores(_:embeddings:)` with each text's reading already found (`readings`, `[n]`).
  private func segmentScores(_ texts: [String], readings: [String?], embeddings: EmbeddingProvider)
    throws(DetectionError) -> [Float?]
  {
    guard let chunking = configuration.chunking, chunking.segments else {
      return Array(repeating: nil, count: texts.count)
    }
    let inputs = zip(texts, readings).map { embeddings.segmentInputs($0, reading: $1, chunking: chunking) }
    return try largestScores(
      texts, inputs: inputs, embeddings: embeddings, cacheKey: EmbeddingProvider.segmentKey)
  }

  /// Chunk and segment scores of each text (`chunkScores`, `segmentScores`).
  public func partScores(_ texts: [String], embeddings: EmbeddingProvider) throws(DetectionError)
    -> [PartScores]
  {
    guard configuration.chunking != nil else { return Array(repeating: PartScores(), count: texts.count) }
    return try partScores(
      texts, readings: Self.readings(texts, embeddings: embeddings), embeddings: embeddings)
  }

  /// `partScores(_:embeddings:)` with each text's reading already found (`readings`, `[n]`;
  /// `WordPieceTokenizer.alternateReading`), so that chunks and segments share it.
  package func partScores(_ texts: [String], readings: [String?], embeddings: EmbeddingProvider)
    throws(DetectionError) -> [PartScores]
  {
    let chunks = try chunkScores(texts, readings: readings, embeddings: embeddings)
    let segments = try segmentScores(texts, readings: readings, embeddings: embeddings)
    return zip(chunks, segments).map { PartScores(chunk: $0, segment: $1) }
  }

  /// Each text's reading by the provider's tokenizer (`WordPieceTokenizer.alternateReading`).
  static func readings(_ texts: [String], embeddings: EmbeddingProvider) -> [String?] {
    texts.map(embeddings.encoder.tokenizer.alternateReading)
  }

  /// Per text, the largest score over its parts (`inputs`, one list per text; `nil` without parts).
  private func largestScores(
    _ texts: [String], inputs partLists: [[(start: Int, ids: [Int])]], embeddings: EmbeddingProvider,
    cacheKey: (String, Int, Int) -> String
  ) throws(DetectionError) -> [Float?] {
    var result = [Float?](repeating: nil, count: texts.count)
    var start = 0
    while start < texts.count {
      // Whole texts per call, about `chunksPerCall` parts at a time (at least one text).
      var end = start
      var inputs: [[(start: Int, ids: [Int])]] = []
      var count = 0
      while end < texts.count, end == start || count < Self.chunksPerCall {
        inputs.append(partLists[end])
        count += inputs[inputs.count - 1].count
        end += 1
      }
      let parts = try embeddings.embedChunks(Array(texts[start..<end]), inputs: inputs, cacheKey: cacheKey)
      let flat = parts.flatMap { $0 }
      var owners: [Int] = []
      for (offset, list) in parts.enumerated() {
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

  /// Whole-prompt evaluations with their part scores folded in: the chunk and segment scores are
  /// put on the whole-prompt scale (`chunkShift`, `segmentShift`, when the model has them), the
  /// score becomes the largest, and the (scaled) part scores are reported as the features
  /// `chunk_score` and `segment_score`.
  ///
  /// - Parameters:
  ///   - evaluations: Whole-prompt evaluations, `[n]`.
  ///   - parts: From `partScores(_:embeddings:)`, `[n]`.
  func merging(_ evaluations: [PromptEvaluation], parts: [PartScores]) -> [PromptEvaluation] {
    zip(evaluations, parts).map { evaluation, part in
      var merged = evaluation
      if let raw = part.chunk {
        let chunkScore = Self.shifted(raw, by: chunkShift)
        merged.score = max(merged.score, chunkScore)
        merged.features.append(Decision.Feature(name: Self.chunkScoreName, value: chunkScore))
      }
      if let raw = part.segment {
        let segmentScore = Self.shifted(raw, by: segmentShift)
        merged.score = max(merged.score, segmentScore)
        merged.features.append(Decision.Feature(name: Self.segmentScoreName, value: segmentScore))
      }
      return merged
    }
  }

  /// Scores prompts the way the model decides them: the whole prompt, and with
  /// `configuration.chunking` each chunk (and segment) too (`merging(_:parts:)`).
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
    return merging(whole, parts: try partScores(texts, embeddings: embeddings))
  }
}
