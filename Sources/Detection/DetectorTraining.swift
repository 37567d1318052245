import Foundation
import LinearAlgebra
import NeuralNetwork

/// The encoder a detector is trained for: its name and weight digest (stored in the bundle).
public struct EncoderIdentity: Sendable, Equatable {
  /// Name, e.g. `all-MiniLM-L6-v2`.
  public var name: String
  /// sha256 of the weights.
  public var sha256: String

  /// Creates an identity.
  public init(name: String, sha256: String) {
    self.name = name
    self.sha256 = sha256
  }
}

/// The outcome of a training run.
public struct TrainingResult: Sendable {
  /// The trained model.
  public let bundle: ModelBundle
  /// The test split (benign and attack records; `harmful` too when it is positive), scored.
  public let testExamples: [ScoredExample]
  /// Seconds spent embedding prompts that were not cached yet.
  public let embeddingSeconds: Double
  /// Prompts embedded now (cache misses).
  public let embeddedPrompts: Int
  /// Seconds spent after embedding (networks, features, classifier, calibration, test scoring).
  public let trainingSeconds: Double
}

/// The training pipeline (DESIGN §2): embed (cached) → feature network on benign training prompts
/// → feature blocks fitted on the training split → standardization from the training split →
/// classifier (early stopping on validation) → threshold calibrated on held-out benign
/// validation prompts → test-split scores.
///
/// Deterministic for a seed and a BLAS thread count.
public enum DetectorTraining {
  /// Written into every bundle's `tool` field.
  public static let toolVersion = "curvalid 0.1.0"

  /// Prompts per feature-extraction chunk (bounds memory: chunk × L × d floats).
  static let chunkSize = 256

  /// Trains a detector.
  ///
  /// - Parameters:
  ///   - corpus: The corpus (splits as recorded).
  ///   - configuration: What to train.
  ///   - embeddings: Encoder, cache and window limit.
  ///   - encoder: The encoder identity stored in the bundle.
  ///   - excludingFamilies: Families kept out of training and validation (leave-one-family-out).
  ///   - progress: Receives stage progress.
  /// - Returns: The bundle, the scored test split and timings.
  /// - Throws: `DetectionError` for an unusable corpus or configuration, encoder or cache failures.
  public static func train(
    corpus: Corpus, configuration: DetectorConfiguration, embeddings: EmbeddingProvider,
    encoder: EncoderIdentity, excludingFamilies: Set<String> = [], progress: ProgressReporter? = nil
  ) throws(DetectionError) -> TrainingResult {
    try configuration.validate()
    let clock = ContinuousClock()
    let records = corpus.records
    let labels: Set<CorpusRecord.Label> =
      configuration.harmfulIsPositive ? [.benign, .adversarial, .harmful] : [.benign, .adversarial]
    let train = corpus.select(splits: [.train], labels: labels, excludingFamilies: excludingFamilies)
    let validation = corpus.select(
      splits: [.validation], labels: labels, excludingFamilies: excludingFamilies)
    let test = corpus.select(splits: [.test], labels: labels)
    func isPositive(_ index: Int) -> Bool { records[index].label != .benign }
    let trainBenign = train.filter { !isPositive($0) }
    guard !trainBenign.isEmpty, train.contains(where: isPositive) else {
      throw DetectionError(
        .invalidInput,
        "the training split needs benign and attack records (records without a \"split\" field count as test)"
      )
    }
    // Validation: benign records of half the groups calibrate the threshold; the rest stop early.
    let calibration = validation.filter { !isPositive($0) && groupHash(records[$0]) % 2 == 0 }
    let calibrationSet = Set(calibration)
    let stopping = validation.filter { !calibrationSet.contains($0) }
    guard !calibration.isEmpty, stopping.contains(where: isPositive) || !stopping.isEmpty else {
      throw DetectionError(.invalidInput, "the validation split needs benign records for calibration")
    }

    // 1. Embeddings (with encoder tuning: the frozen states, the tuning, then the tuned rows).
    let everyRecord = train + validation + test
    var tuned: TunedEncoder?
    let filled: (embedded: Int, seconds: Double)
    let started = clock.now
    if let tuning = configuration.encoderTuning {
      let result = try tuneEncoder(
        tuning, seed: configuration.seed, corpus: corpus, train: train, everything: everyRecord,
        isPositive: isPositive, embeddings: embeddings, progress: progress)
      tuned = result
      filled = (result.embedded, result.seconds)
    } else {
      filled = try embeddings.fill(everyRecord.map { records[$0].text }, progress: progress)
    }
    // The rows every later stage reads: the tuned encoder's when tuning.
    let rowsProvider = tuned?.provider ?? embeddings
    let hiddenSize = embeddings.encoder.model.configuration.hiddenSize
    let context = FeatureBlockContext(configuration: configuration, hiddenSize: hiddenSize)
    func load(_ indices: ArraySlice<Int>) throws(DetectionError) -> [PromptEmbedding] {
      try rowsProvider.embed(indices.map { records[$0].text })
    }
    var random = NetworkRandom(seed: configuration.seed)

    // 2. Feature network on benign training prompts.
    var featureNetwork: FeatureNetworkModel?
    var centroids: Matrix?
    if FeatureBlockRegistry.needsFeatureNetwork(configuration.features) {
      let trained = try trainFeatureNetwork(
        corpus: corpus, benignTrain: trainBenign, benignValidation: stopping.filter { !isPositive($0) },
        allTrain: train, configuration: configuration, hiddenSize: hiddenSize, load: load, random: &random,
        progress: progress)
      featureNetwork = trained.model
      centroids = trained.centroids
    }

    // 3. Raw block rows for every example, chunk by chunk.
    var blocks: [any FeatureBlock] = []
    for name in configuration.features {
      blocks.append(try FeatureBlockRegistry.make(name, context: context))
    }
    // Under the `separate` fusion rule the fused block only adds rejections to the classifier that
    // the configuration without it trains, so it draws from a stream of its own: the pipeline's
    // generator (and with it the classifier and its threshold) stays as it would be without it.
    var ownRandom = NetworkRandom(seed: configuration.seed ^ 0x5EED_F05E)
    let separateStream =
      configuration.classifier.fuse != nil && configuration.classifier.fusionRule == .separate
    for index in blocks.indices {
      guard var supervised = blocks[index] as? any SupervisedFeatureBlock else { continue }
      let isFused = separateStream && configuration.features[index] == configuration.classifier.fuse
      if isFused { swap(&random, &ownRandom) }
      try supervised.train(
        indices: train, isAttack: train.map(isPositive), families: train.map { records[$0].family },
        groups: train.map { records[$0].group.isEmpty ? records[$0].text : records[$0].group }, load: load,
        random: &random, progress: progress)
      if isFused { swap(&random, &ownRandom) }
      blocks[index] = supervised
    }
    let unfitted = ScoringModel(
      configuration: configuration, hiddenSize: hiddenSize, featureNetwork: featureNetwork, blocks: blocks,
      featureMean: [], featureDeviation: [],
      classifier: ClassifierModel(settings: configuration.classifier, inputWidth: 0, tensors: []))
    let pair = NetworkPair(feature: try featureNetwork?.makeNetwork(), classifier: Sequential([]))
    let everything = train + stopping + calibration
    progress?.begin("features", total: everything.count)
    var raw: [[Float]] = Array(repeating: [], count: blocks.count)
    var start = 0
    while start < everything.count {
      let end = min(start + chunkSize, everything.count)
      let (parts, _) = unfitted.rawFeatures(try load(everything[start..<end]), networks: pair)
      for (index, part) in parts.enumerated() { raw[index] += part.storage }
      start = end
      progress?.update(start)
    }
    progress?.finish()
    func rows(_ block: Int, _ range: Range<Int>) -> Matrix {
      let width = blocks[block].rawWidth
      return Matrix(
        rows: range.count, columns: width,
        storage: Array(raw[block][(range.lowerBound * width)..<(range.upperBound * width)]))
    }
    let trainRange = 0..<train.count
    let stoppingRange = train.count..<(train.count + stopping.count)
    let calibrationRange = stoppingRange.upperBound..<everything.count

    // 4. Fit blocks on the training split and transform every set.
    let isBenign = train.map { !isPositive($0) }
    var trainParts: [Matrix] = []
    var stoppingParts: [Matrix] = []
    var calibrationParts: [Matrix] = []
    for index in blocks.indices {
      try blocks[index].fit(raw: rows(index, trainRange), isBenign: isBenign)
      trainParts.append(try blocks[index].transform(rows(index, trainRange), trainingRows: Array(trainRange)))
      stoppingParts.append(try blocks[index].transform(rows(index, stoppingRange), trainingRows: []))
      calibrationParts.append(try blocks[index].transform(rows(index, calibrationRange), trainingRows: []))
    }
    let fusedBlock = ScoringModel.fusedBlockIndex(configuration)
    if let fusedBlock, blocks[fusedBlock].width != 1 {
      throw DetectionError(
        .invalidInput,
        "classifier.fuse: block '\(configuration.features[fusedBlock])' has \(blocks[fusedBlock].width) columns, "
          + "fusion needs one")
    }
    var trainFeatures = ScoringModel.concatenate(
      ScoringModel.classifierParts(trainParts, fusedBlock: fusedBlock))
    var trainLabels = train.map { isPositive($0) ? 1 : 0 }
    // The family of each attack row and of each benign prompt's row (nil otherwise), for
    // `classifier.familyBalance` and `classifier.benignBalance`.
    var attackFamilies: [String?] = train.map { isPositive($0) ? records[$0].family : nil }
    var benignFamilies: [String?] = train.map { isPositive($0) ? nil : records[$0].family }
    if let chunking = configuration.chunking, chunking.benignChunksInTraining {
      let chunkRows = try benignChunkFeatures(
        trainBenign.map { records[$0].text }, chunking: chunking, model: unfitted, blocks: blocks,
        networks: pair, fusedBlock: fusedBlock, embeddings: rowsProvider, progress: progress)
      trainFeatures = Matrix(
        rows: trainFeatures.rows + chunkRows.rows, columns: trainFeatures.columns,
        storage: trainFeatures.storage + chunkRows.storage)
      trainLabels += Array(repeating: 0, count: chunkRows.rows)
      attackFamilies += Array(repeating: nil, count: chunkRows.rows)
      benignFamilies += Array(repeating: nil, count: chunkRows.rows)
    }
    if let chunking = configuration.chunking, chunking.attackOpeningsInTraining > 0 {
      let attackIndices = train.filter(isPositive)
      let attacks = attackIndices.map { records[$0].text }
      let openings = attacks.map { rowsProvider.openingInputs($0, length: chunking.attackOpeningsInTraining) }
      let openingRows = try partFeatures(
        attacks,
        inputs: openings,
        title: "attack openings", model: unfitted, blocks: blocks, networks: pair, fusedBlock: fusedBlock,
        embeddings: rowsProvider, progress: progress)
      trainFeatures = Matrix(
        rows: trainFeatures.rows + openingRows.rows, columns: trainFeatures.columns,
        storage: trainFeatures.storage + openingRows.storage)
      trainLabels += Array(repeating: 1, count: openingRows.rows)
      for (index, parts) in zip(attackIndices, openings) {
        attackFamilies += Array(repeating: records[index].family, count: parts.count)
        benignFamilies += Array(repeating: nil, count: parts.count)
      }
    }
    let (mean, deviation) = columnStatistics(trainFeatures)

    // 5. Classifier.
    progress?.note("classifier: \(trainFeatures.rows) training rows, \(trainFeatures.columns) features")
    let classifier = try trainClassifier(
      train: ScoringModel.standardize(trainFeatures, mean: mean, deviation: deviation),
      trainLabels: trainLabels,
      sampleWeights: rowWeights(
        attackFamilies: attackFamilies, benignFamilies: benignFamilies, settings: configuration.classifier),
      validation: ScoringModel.standardize(
        ScoringModel.concatenate(ScoringModel.classifierParts(stoppingParts, fusedBlock: fusedBlock)),
        mean: mean,
        deviation: deviation),
      validationLabels: stopping.map { isPositive($0) ? 1 : 0 }, settings: configuration.classifier,
      random: &random)

    // 6. Threshold on held-out benign validation prompts (with fusion: first the fusion's
    // statistics, from the same prompts).
    let classifierNetwork = try classifier.makeNetwork()
    let calibrationInput = ScoringModel.standardize(
      ScoringModel.concatenate(ScoringModel.classifierParts(calibrationParts, fusedBlock: fusedBlock)),
      mean: mean,
      deviation: deviation)
    func calibrate(_ scores: [Float], targetFalsePositiveRate: Double? = nil) throws(DetectionError) -> Float
    {
      do {
        return try Metrics.threshold(
          forBenignScores: scores,
          targetFalsePositiveRate: targetFalsePositiveRate ?? configuration.targetFalsePositiveRate)
      } catch let error as DetectionError {
        throw error
      } catch {
        throw DetectionError(.internalError, "threshold calibration failed: \(error)")
      }
    }
    var fusion: ScoreFusion?
    let calibrationScores: [Float]
    // Rule `separate` fixes the whole-prompt threshold before fusing: the classifier's own.
    var separateThreshold: Float?
    if let fusedBlock {
      let logits = ScoringModel.logitDifferences(calibrationInput, classifier: classifierNetwork)
      let block = calibrationParts[fusedBlock].storage
      let statistics: ScoreFusion
      if configuration.classifier.fusionRule == .separate {
        let threshold = try calibrate(logits.map(ScoreFusion.sigmoid))
        let budget =
          configuration.classifier.fuseFalsePositiveRate ?? configuration.targetFalsePositiveRate / 4
        let blockThreshold = try calibrate(block, targetFalsePositiveRate: budget)
        progress?.note(
          "fusion: classifier threshold \(threshold), block threshold \(blockThreshold) at \(budget)")
        statistics = ScoreFusion(
          separateLogits: logits, block: block, threshold: threshold, blockThreshold: blockThreshold)
        separateThreshold = threshold
      } else {
        statistics = ScoreFusion(
          benignLogits: logits, benignBlock: block, rule: configuration.classifier.fusionRule,
          tailQuantile: 1 - configuration.targetFalsePositiveRate)
      }
      fusion = statistics
      calibrationScores = zip(logits, block).map { statistics.score(logit: $0, block: $1) }
    } else {
      calibrationScores = ScoringModel.probabilities(calibrationInput, classifier: classifierNetwork)
    }
    func makeModel(chunkShift: Float?, segmentShift: Float? = nil) -> ScoringModel {
      ScoringModel(
        configuration: configuration, hiddenSize: hiddenSize, featureNetwork: featureNetwork, blocks: blocks,
        featureMean: mean, featureDeviation: deviation, classifier: classifier, fusion: fusion,
        tunedLayers: tuned?.layers ?? [], chunkShift: chunkShift, segmentShift: segmentShift)
    }
    var model = makeModel(chunkShift: nil)
    // With chunk scoring, a calibration prompt scores as the model will decide it: `joint`, the
    // larger of its whole-prompt score and its chunks' scores under one threshold; `separate`,
    // the threshold from whole scores and a chunk threshold from the benign prompts with chunks.
    let calibrationChunks = try model.chunkScores(
      calibration.map { records[$0].text }, embeddings: rowsProvider)
    let threshold: Float
    // Under `shared`: the whole-prompt threshold's share of the target (kept in the bundle's
    // evaluation summary).
    var wholePromptBudget: Double?
    if let chunking = configuration.chunking, chunking.hasOwnPartThresholds {
      let benignTexts = trainBenign.map { records[$0].text }
      let trainChunks = try model.chunkScores(benignTexts, embeddings: rowsProvider)
      // One entry per benign calibration prompt, then per benign training prompt.
      let benignChunks = calibrationChunks + trainChunks
      let pool = benignChunks.compactMap { $0 }
      // Without a benign prompt that has chunks there is nothing to calibrate on: chunk scores
      // then count as they are (shift 0), and the bundle says so.
      var chunkThreshold: Float?
      if !pool.isEmpty {
        let calibrated = try calibrate(pool)
        progress?.note("chunk threshold \(calibrated) from \(pool.count) benign prompts with chunks")
        chunkThreshold = calibrated
      }
      var segmentPool: [Float?] = []
      var partSegmentThreshold: Float?
      if chunking.segments {
        // Every benign prompt counts; one without segments can never be flagged by them (0).
        segmentPool = try model.segmentScores(
          calibration.map { records[$0].text } + benignTexts, embeddings: rowsProvider)
        partSegmentThreshold = try calibrate(
          segmentPool.map { $0 ?? 0 }, targetFalsePositiveRate: configuration.segmentBudget)
      }
      if let separateThreshold {
        threshold = separateThreshold
      } else if chunking.calibrationRule == .shared {
        let share = Self.partFlaggedShare(
          chunks: benignChunks, chunkThreshold: chunkThreshold, segments: segmentPool,
          segmentThreshold: partSegmentThreshold)
        let budget = Self.sharedWholeBudget(target: configuration.targetFalsePositiveRate, partShare: share)
        progress?.note(
          "shared budget: chunks or segments flag \(share) of \(benignChunks.count) benign prompts; "
            + "whole-prompt threshold at \(budget)")
        threshold = try calibrate(calibrationScores, targetFalsePositiveRate: budget)
        wholePromptBudget = budget
      } else {
        threshold = try calibrate(calibrationScores)
      }
      let shift = chunkThreshold.map { ScoringModel.shift(mapping: $0, onto: threshold) } ?? 0
      var segmentShift: Float?
      if let partSegmentThreshold {
        // Never below the whole-prompt threshold: a segment counts at most as much as a prompt
        // with its score (and a pool without segments, all 0, cannot turn every segment into a
        // rejection).
        let segmentThreshold = max(partSegmentThreshold, threshold)
        progress?.note(
          "segment threshold \(segmentThreshold) at \(configuration.segmentBudget) of \(segmentPool.count) "
            + "benign prompts (\(segmentPool.compactMap { $0 }.count) with segments)")
        segmentShift = ScoringModel.shift(mapping: segmentThreshold, onto: threshold)
      }
      model = makeModel(chunkShift: shift, segmentShift: segmentShift)
    } else if let separateThreshold, configuration.chunking == nil {
      threshold = separateThreshold
    } else {
      threshold = try calibrate(
        zip(calibrationScores, calibrationChunks).map { whole, chunk in max(whole, chunk ?? whole) })
    }

    // 7. Test split.
    let testExamples = try score(
      test, corpus: corpus, model: model, embeddings: embeddings, progress: progress)
    var summary = EvaluationSummary.compute(testExamples, threshold: threshold)
    summary["calibration_benign"] = Double(calibration.count)
    if let wholePromptBudget { summary["whole_prompt_fpr_budget"] = wholePromptBudget }
    let bundle = ModelBundle(
      model: model, threshold: threshold, encoderName: encoder.name, encoderSHA256: encoder.sha256,
      corpusDigest: corpus.digest, trainingCounts: corpus.counts(train), evaluation: summary,
      topicCentroids: centroids)
    return TrainingResult(
      bundle: bundle, testExamples: testExamples, embeddingSeconds: filled.seconds,
      embeddedPrompts: filled.embedded,
      trainingSeconds: ProgressReporter.seconds(clock.now - started) - filled.seconds)
  }

  /// Scores corpus records with a model.
  ///
  /// - Returns: One `ScoredExample` per record (`isAttack`: label is not benign).
  /// - Throws: `DetectionError` from embedding or scoring.
  public static func score(
    _ indices: [Int], corpus: Corpus, model: ScoringModel, embeddings: EmbeddingProvider,
    progress: ProgressReporter? = nil
  ) throws(DetectionError) -> [ScoredExample] {
    let embeddings = try embeddings.adapted(to: model)
    var examples: [ScoredExample] = []
    examples.reserveCapacity(indices.count)
    progress?.begin("scoring", total: indices.count)
    var start = 0
    while start < indices.count {
      let end = min(start + chunkSize, indices.count)
      let chunk = indices[start..<end]
      let evaluations = try model.evaluate(
        texts: chunk.map { corpus.records[$0].text }, embeddings: embeddings)
      for (index, evaluation) in zip(chunk, evaluations) {
        let record = corpus.records[index]
        examples.append(
          ScoredExample(
            score: evaluation.score, isAttack: record.label != .benign, family: record.family,
            source: record.source,
            tokens: evaluation.tokens,
            features: Dictionary(evaluation.features.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })))
      }
      start = end
      progress?.update(start)
    }
    progress?.finish()
    return examples
  }

  /// The classifier's input rows of the chunks of benign training prompts
  /// (`Chunking.benignChunksInTraining`): `[chunks, classifierWidth]`, unstandardized.
  ///
  /// - Parameters:
  ///   - texts: The benign training prompts (those of at most one chunk add nothing).
  ///   - model: The model whose feature network and blocks extract raw rows.
  ///   - blocks: The fitted blocks, in `model`'s order.
  /// - Throws: `DetectionError` from the encoder, the cache or a block.
  static func benignChunkFeatures(
    _ texts: [String], chunking: DetectorConfiguration.Chunking, model: ScoringModel,
    blocks: [any FeatureBlock],
    networks: NetworkPair, fusedBlock: Int?, embeddings: EmbeddingProvider, progress: ProgressReporter?
  ) throws(DetectionError) -> Matrix {
    try partFeatures(
      texts, inputs: texts.map { embeddings.chunkInputs($0, chunking: chunking) },
      title: "benign training chunks",
      model: model, blocks: blocks, networks: networks, fusedBlock: fusedBlock, embeddings: embeddings,
      progress: progress)
  }

  /// The classifier's input rows of parts of prompts, each encoded alone (chunks, openings):
  /// `[parts, classifierWidth]`, unstandardized, in the order of `texts` and then of their parts.
  ///
  /// - Parameters:
  ///   - texts: The prompts the parts come from (their digests key the cached parts).
  ///   - inputs: Each prompt's parts as `[CLS] … [SEP]` id sequences with their start (cut by
  ///     `chunkInputs` or `openingInputs`); a prompt without parts adds no row.
  ///   - title: The progress reporter's name for the stage.
  ///   - model: The model whose feature network and blocks extract raw rows.
  ///   - blocks: The fitted blocks, in `model`'s order.
  /// - Throws: `DetectionError` from the encoder, the cache or a block.
  static func partFeatures(
    _ texts: [String], inputs: [[(start: Int, ids: [Int])]], title: String, model: ScoringModel,
    blocks: [any FeatureBlock],
    networks: NetworkPair, fusedBlock: Int?, embeddings: EmbeddingProvider, progress: ProgressReporter?
  ) throws(DetectionError) -> Matrix {
    let width = ScoringModel.classifierWidth(blocks, fusedBlock: fusedBlock)
    var storage: [Float] = []
    progress?.begin(title, total: texts.count)
    var start = 0
    while start < texts.count {
      let end = min(start + chunkSize, texts.count)
      let parts = try embeddings.embedChunks(Array(texts[start..<end]), inputs: Array(inputs[start..<end]))
        .flatMap { $0 }
      var position = 0
      while position < parts.count {
        let stop = min(position + ScoringModel.chunksPerCall, parts.count)
        let (raw, _) = model.rawFeatures(Array(parts[position..<stop]), networks: networks)
        var transformed: [Matrix] = []
        for (block, rows) in zip(blocks, raw) {
          transformed.append(try block.transform(rows, trainingRows: []))
        }
        storage +=
          ScoringModel.concatenate(ScoringModel.classifierParts(transformed, fusedBlock: fusedBlock)).storage
        position = stop
      }
      start = end
      progress?.update(end)
    }
    progress?.finish()
    progress?.note("\(title): \(storage.count / max(width, 1)) rows")
    return Matrix(rows: storage.count / max(width, 1), columns: width, storage: storage)
  }

  /// The share of benign prompts that a chunk or a segment flags on its own: prompt `i` counts
  /// when `chunks[i] ≥ chunkThreshold` or `segments[i] ≥ segmentThreshold` (a missing score or
  /// threshold never flags). `segments` is either empty or as long as `chunks`.
  static func partFlaggedShare(
    chunks: [Float?], chunkThreshold: Float?, segments: [Float?], segmentThreshold: Float?
  ) -> Double {
    guard !chunks.isEmpty else { return 0 }
    func reaches(_ score: Float?, _ threshold: Float?) -> Bool {
      guard let score, let threshold else { return false }
      return score >= threshold
    }
    var flagged = 0
    for index in chunks.indices {
      let bySegment = index < segments.count && reaches(segments[index], segmentThreshold)
      if reaches(chunks[index], chunkThreshold) || bySegment { flagged += 1 }
    }
    return Double(flagged) / Double(chunks.count)
  }

  /// The whole-prompt threshold's budget under `chunking.calibration = shared`: the target minus
  /// what chunks and segments already flag, never below a quarter of the target (a model whose
  /// parts flag more than that keeps a whole-prompt threshold; its decisions then exceed the
  /// target, and the training note says by how much).
  static func sharedWholeBudget(target: Double, partShare: Double) -> Double {
    max(target - partShare, target / 4)
  }

  /// A stable hash of a record's group (its text when it has none).
  static func groupHash(_ record: CorpusRecord) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in (record.group.isEmpty ? record.text : record.group).utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return hash >> 7
  }

  /// Per-column mean and standard deviation (floored at 1e-6) of `[rows, columns]`.
  static func columnStatistics(_ matrix: Matrix) -> (mean: [Float], deviation: [Float]) {
    var sum = [Double](repeating: 0, count: matrix.columns)
    var squares = [Double](repeating: 0, count: matrix.columns)
    for row in 0..<matrix.rows {
      for c in 0..<matrix.columns {
        let value = Double(matrix.storage[row * matrix.columns + c])
        sum[c] += value
        squares[c] += value * value
      }
    }
    let count = Double(max(1, matrix.rows))
    let mean = sum.map { $0 / count }
    let deviation = zip(squares, mean).map { square, m in Float(max(square / count - m * m, 0).squareRoot()) }
    return (mean.map { Float($0) }, deviation.map { max($0, 1e-6) })
  }

  /// Per-row loss weights for `classifier.familyBalance`: a row of family `f` (a non-nil entry)
  /// weighs `n_f^-exponent`, with `n_f` the rows of `f`, scaled so that these rows' mean weight is
  /// 1; rows without a family (benign) weigh 1. `[rows]`.
  static func familyWeights(families: [String?], exponent: Double) -> [Float] {
    var counts: [String: Int] = [:]
    for case let family? in families { counts[family, default: 0] += 1 }
    let raw = families.map { family in family.map { pow(Double(counts[$0] ?? 1), -exponent) } }
    let familyRows = raw.compactMap { $0 }
    guard !familyRows.isEmpty else { return Array(repeating: 1, count: families.count) }
    let mean = familyRows.reduce(0, +) / Double(familyRows.count)
    return raw.map { weight in weight.map { Float($0 / mean) } ?? 1 }
  }

  /// The classifier's per-row loss weights `[rows]` under `familyBalance` (attack rows, by
  /// `attackFamilies`) and `benignBalance` (benign prompts' rows, by `benignFamilies`), each from
  /// `familyWeights`; rows without a family in either list (chunks, openings on the benign side)
  /// weigh 1. `nil` when both settings are off.
  static func rowWeights(
    attackFamilies: [String?], benignFamilies: [String?], settings: DetectorConfiguration.Classifier
  ) -> [Float]? {
    guard settings.familyBalance != nil || settings.benignBalance != nil else { return nil }
    let attack = familyWeights(families: attackFamilies, exponent: settings.familyBalance ?? 0)
    let benign = familyWeights(families: benignFamilies, exponent: settings.benignBalance ?? 0)
    return zip(attack, benign).map { $0 * $1 }
  }

  /// Trains the classifier with class balancing (and, given `sampleWeights` (`[rows]`), weighted
  /// rows) and early stopping; with `settings.members = m ≥ 2`, `m` members one after another, each
  /// from the next draws of `random` (the first draws what a single classifier would).
  static func trainClassifier(
    train: Matrix, trainLabels: [Int], sampleWeights: [Float]? = nil, validation: Matrix,
    validationLabels: [Int], settings: DetectorConfiguration.Classifier, random: inout NetworkRandom
  ) throws(DetectionError) -> ClassifierModel {
    var tensors: [NamedTensor] = []
    for prefix in ClassifierModel.memberPrefixes(settings) {
      let network = ClassifierModel.member(
        settings, inputWidth: train.columns, prefix: prefix, random: &random)
      try fitClassifier(
        network, train: train, trainLabels: trainLabels, sampleWeights: sampleWeights, validation: validation,
        validationLabels: validationLabels, settings: settings, random: &random)
      tensors += network.exportTensors()
    }
    return ClassifierModel(settings: settings, inputWidth: train.columns, tensors: tensors)
  }

  /// Fits one classifier network in place.
  private static func fitClassifier(
    _ network: Sequential, train: Matrix, trainLabels: [Int], sampleWeights: [Float]?, validation: Matrix,
    validationLabels: [Int], settings: DetectorConfiguration.Classifier, random: inout NetworkRandom
  ) throws(DetectionError) {
    let optimizer = Adam(parameters: network.parameters, learningRate: settings.learningRate, l2: settings.l2)
    let positives = Float(trainLabels.reduce(0, +))
    let negatives = Float(trainLabels.count) - positives
    let weights: [Float]? =
      settings.balanceClasses && positives > 0 && negatives > 0
      ? [Float(trainLabels.count) / (2 * negatives), Float(trainLabels.count) / (2 * positives)] : nil
    let hasValidation = validation.rows > 0 && settings.patience > 0
    do {
      _ = try Trainer.fit(
        network: network, optimizer: optimizer, inputs: Tensor(train), labels: trainLabels,
        validation: hasValidation ? (Tensor(validation), validationLabels) : nil,
        configuration: TrainingConfiguration(
          epochs: settings.epochs, batchSize: settings.batchSize, classWeights: weights,
          sampleWeights: sampleWeights,
          patience: hasValidation ? settings.patience : nil),
        random: &random)
    } catch {
      throw DetectionError(.internalError, "classifier training failed: \(error.message)")
    }
  }
}
