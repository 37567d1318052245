import Embeddings
import Foundation

/// A trained model bundle with the encoder it was made for: prompts in, decisions out.
///
/// Safe to call from several threads at once (the encoder and model are immutable; networks come
/// from a pool).
public final class Detector: PromptScoring {
  /// The loaded bundle.
  public let bundle: ModelBundle
  /// The encoder the detector runs (with the bundle's fine-tuned top layers, when it has them).
  public let encoder: TextEncoder
  /// The encoder as it was passed in (without fine-tuned layers), for sharing with other bundles.
  public let baseEncoder: TextEncoder
  /// The first 8 hex digits of the bundle file's sha256.
  public let modelID: String
  /// The decision threshold on the score: the bundle's calibrated one, or the operator's override.
  public let threshold: Float
  /// Whether `threshold` is an operator's override rather than the bundle's calibrated threshold.
  public let thresholdOverridden: Bool
  private let embeddings: EmbeddingProvider

  /// Pairs a bundle with an encoder.
  ///
  /// - Parameters:
  ///   - bundle: The model.
  ///   - encoder: The encoder (its digest was checked when the bundle was read); when the bundle
  ///     holds fine-tuned top layers, the detector runs the encoder with those layers instead.
  ///   - modelID: The bundle's id.
  ///   - threshold: A decision threshold in [0, 1] replacing the bundle's calibrated one (an
  ///     operating point chosen for a deployment); `nil` keeps the bundle's.
  /// - Throws: `DetectionError(.invalidBundle)` when the bundle's tuned layers do not fit the
  ///   encoder, `.invalidInput` for a threshold outside [0, 1].
  public init(bundle: ModelBundle, encoder: TextEncoder, modelID: String, threshold: Float? = nil)
    throws(DetectionError)
  {
    if let threshold, !(threshold >= 0 && threshold <= 1) {
      throw DetectionError(.invalidInput, "the threshold must be a number from 0 to 1, got \(threshold)")
    }
    let embeddings = try EmbeddingProvider(
      encoder: encoder, cache: nil, maxWindows: bundle.configuration.maxWindows
    ).adapted(to: bundle.model)
    self.bundle = bundle
    self.encoder = embeddings.encoder
    self.baseEncoder = encoder
    self.modelID = modelID
    self.threshold = threshold ?? bundle.threshold
    self.thresholdOverridden = threshold != nil
    self.embeddings = embeddings
  }

  /// Loads a bundle file for an encoder.
  ///
  /// - Parameters:
  ///   - url: The bundle.
  ///   - encoder: The encoder.
  ///   - encoderSHA256: The encoder weights' digest, checked against the bundle's (`nil`: skip).
  ///   - threshold: A threshold in [0, 1] replacing the bundle's (`nil`: the bundle's).
  /// - Throws: `DetectionError(.invalidBundle)`, `.invalidInput` or `.io`, one line.
  public convenience init(
    contentsOf url: URL, encoder: TextEncoder, encoderSHA256: String?, threshold: Float? = nil
  ) throws(DetectionError) {
    let bundle = try ModelBundle.read(from: url, encoderSHA256: encoderSHA256)
    guard bundle.model.hiddenSize == encoder.model.configuration.hiddenSize else {
      throw DetectionError(
        .invalidBundle,
        "model bundle \(url.path) expects \(bundle.model.hiddenSize)-wide embeddings, the encoder gives "
          + "\(encoder.model.configuration.hiddenSize)")
    }
    try self.init(
      bundle: bundle, encoder: encoder, modelID: try ModelBundle.modelID(of: url), threshold: threshold)
  }

  /// Scores prompts; an empty or whitespace-only prompt fails with `.emptyPrompt`.
  public func score(_ prompts: [String], explain: Bool) -> [Result<Decision, DetectionError>] {
    var results = [Result<Decision, DetectionError>](
      repeating: .failure(DetectionError(.internalError, "not scored")), count: prompts.count)
    var valid: [Int] = []
    for (index, prompt) in prompts.enumerated() {
      if prompt.allSatisfy({ $0.isWhitespace }) {
        results[index] = .failure(DetectionError(.emptyPrompt, "the prompt is empty"))
      } else {
        valid.append(index)
      }
    }
    guard !valid.isEmpty else { return results }
    var decisions: [Decision]
    let texts = valid.map { prompts[$0] }
    // Each prompt's reading, found once for its chunks, its segments and its explanation.
    let readings: [String?] =
      bundle.model.configuration.chunking != nil || explain
      ? texts.map(encoder.tokenizer.alternateReading) : Array(repeating: nil, count: texts.count)
    do {
      let parts = try bundle.model.partScores(texts, readings: readings, embeddings: embeddings)
      decisions = try decide(embed(texts), parts: parts, explain: explain, stages: nil)
    } catch {
      for index in valid { results[index] = .failure(error) }
      return results
    }
    if explain { decisions = zip(readings, decisions).map(withReading) }
    for (slot, index) in valid.enumerated() { results[index] = .success(decisions[slot]) }
    return results
  }

  /// The most characters of a prompt's reading an explanation shows.
  public static let readingShown = 1_000

  /// `decision` with a prompt's reading in its explanation (`Decision.Explanation.reading`).
  private func withReading(_ reading: String?, _ decision: Decision) -> Decision {
    guard let explanation = decision.explanation, let reading else { return decision }
    return Decision(
      score: decision.score, threshold: decision.threshold, tokens: decision.tokens,
      features: decision.features,
      explanation: Decision.Explanation(
        topTokens: explanation.topTokens, nearestBenignDistances: explanation.nearestBenignDistances,
        reading: String(reading.prefix(Self.readingShown))))
  }

  /// The encoder part of `score`: WordPiece tokenization and the encoder forward pass, keeping the
  /// bundle's `maxWindows` windows per prompt.
  ///
  /// For a model without chunk scoring, `score` is `decide(embed(prompts), explain:)` for
  /// non-empty prompts; the two halves are separate so that `curvalid bench detector` can time
  /// them apart (issue 6: the part after the encoder must add at most 20% to the encoder's time).
  /// With chunk scoring, `score` also encodes and scores each chunk of a longer prompt and each
  /// segment of one with several (`ScoringModel.partScores(_:embeddings:)`), which neither half
  /// includes.
  ///
  /// - Throws: `DetectionError(.internalError)` when the encoder fails.
  public func embed(_ prompts: [String]) throws(DetectionError) -> [PromptEmbedding] {
    try embeddings.embedUncached(prompts)
  }

  /// Everything `score` does after the encoder: the feature network, every feature block, the
  /// classifier and the decisions (with `explain`, the explanation too).
  ///
  /// - Parameters:
  ///   - embedded: Prompts from `embed(_:)`.
  ///   - explain: Whether to add explanations.
  /// - Returns: One decision per prompt, in order.
  /// - Throws: `DetectionError` when a block fails or the stored networks are malformed.
  public func decide(_ embedded: [PromptEmbedding], explain: Bool) throws(DetectionError) -> [Decision] {
    try decide(embedded, parts: nil, explain: explain, stages: nil)
  }

  /// `decide(_:explain:)` with the prompts' chunk and segment scores folded in (`ScoringModel.merging`) when
  /// given, timing the model's stages into `stages` (see `ScoringModel.evaluate(_:explain:stages:)`).
  package func decide(
    _ embedded: [PromptEmbedding], parts: [ScoringModel.PartScores]?, explain: Bool, stages: StageClock?
  ) throws(DetectionError) -> [Decision] {
    var evaluations = try bundle.model.evaluate(embedded, explain: explain, stages: stages)
    if let parts { evaluations = bundle.model.merging(evaluations, parts: parts) }
    return zip(embedded, evaluations).map { embedding, evaluation in
      var explanation: Decision.Explanation?
      if explain {
        let ids = embedding.ids
        explanation = Decision.Explanation(
          topTokens: evaluation.curvaturePositions.compactMap { entry in
            ids.indices.contains(entry.position)
              ? (token: encoder.token(for: ids[entry.position]), position: entry.position, value: entry.value)
              : nil
          },
          nearestBenignDistances: evaluation.nearestBenignDistances)
      }
      return Decision(
        score: evaluation.score, threshold: threshold, tokens: evaluation.tokens,
        features: evaluation.features, explanation: explanation)
    }
  }
}
