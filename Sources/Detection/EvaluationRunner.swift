import Foundation

/// Produces scored examples for `curvalid evaluate`: the test split of a trained bundle, and
/// leave-one-family-out retraining. Metrics (and length matching) are computed from the
/// returned `[ScoredExample]` by the metrics code.
public enum EvaluationRunner {
  /// Scores of one evaluation run, with what produced them.
  public struct Run: Sendable {
    /// What was evaluated (`test`, or `leave-out:<family>`).
    public let name: String
    /// The model's threshold.
    public let threshold: Float
    /// The configuration of the model.
    public let configuration: DetectorConfiguration
    /// The scored prompts.
    public let examples: [ScoredExample]
    /// Metadata for reports (model id, corpus digest, held-out family…).
    public let metadata: [String: String]
  }

  /// Scores the test split of `corpus` (benign and adversarial records; harmful ones too when
  /// `includeHarmful`, counted as attacks) with a trained model.
  ///
  /// - Throws: `DetectionError` from embedding or scoring.
  public static func testSplit(
    bundle: ModelBundle, modelID: String, corpus: Corpus, embeddings: EmbeddingProvider,
    includeHarmful: Bool = false,
    progress: ProgressReporter? = nil
  ) throws(DetectionError) -> Run {
    let labels: Set<CorpusRecord.Label> =
      includeHarmful ? [.benign, .adversarial, .harmful] : [.benign, .adversarial]
    let indices = corpus.select(splits: [.test], labels: labels)
    let examples = try DetectorTraining.score(
      indices, corpus: corpus, model: bundle.model, embeddings: embeddings, progress: progress)
    return Run(
      name: "test", threshold: bundle.threshold, configuration: bundle.configuration, examples: examples,
      metadata: ["model": modelID, "corpus_sha256": corpus.digest, "trained_on": bundle.corpusDigest])
  }

  /// Leave-one-family-out: for each attack family F, trains on everything except F (and except
  /// the test split), then scores all records of F (every split) plus the benign test records.
  ///
  /// - Parameters:
  ///   - families: The families to leave out (default: every attack family of the corpus).
  /// - Returns: One run per family.
  /// - Throws: `DetectionError` from training or scoring.
  public static func leaveOneFamilyOut(
    configuration: DetectorConfiguration, corpus: Corpus, embeddings: EmbeddingProvider,
    encoder: EncoderIdentity,
    families: [String]? = nil, progress: ProgressReporter? = nil
  ) throws(DetectionError) -> [Run] {
    var runs: [Run] = []
    for family in families ?? corpus.attackFamilies {
      progress?.note("leave-one-family-out: training without \(family)")
      let result = try DetectorTraining.train(
        corpus: corpus, configuration: configuration, embeddings: embeddings, encoder: encoder,
        excludingFamilies: [family], progress: progress)
      let held = corpus.select(labels: [.adversarial], families: [family])
      let benign = corpus.select(splits: [.test], labels: [.benign])
      let examples = try DetectorTraining.score(
        held + benign, corpus: corpus, model: result.bundle.model, embeddings: embeddings, progress: progress)
      if !result.bundle.model.tunedLayers.isEmpty,
        let tunedCache = try embeddings.adapted(to: result.bundle.model).cache
      {
        // A fold's tuned rows serve no other run (each fold tunes its own layers): free the disk.
        try? FileManager.default.removeItem(at: tunedCache.directory)
      }
      runs.append(
        Run(
          name: "leave-out:\(family)", threshold: result.bundle.threshold, configuration: configuration,
          examples: examples, metadata: ["held_out_family": family, "corpus_sha256": corpus.digest]))
    }
    return runs
  }
}
