import Detection
import Embeddings
import Foundation
import LinearAlgebra
import NeuralNetwork
import TestSupport
import XCTest

/// The `supervised_cnn` block and the `supervised-cnn` preset on the fixture corpus with the tiny encoder.
final class SupervisedTokenCNNTests: XCTestCase {
  /// The `supervised-cnn` preset shrunk to the fixture's size.
  static func configuration() throws -> DetectorConfiguration {
    var configuration = try DetectionFixture.configuration(preset: "supervised-cnn")
    for assignment in [
      "supervisedCNN.crop=8", "supervisedCNN.filters=8", "supervisedCNN.epochs=30",
      "supervisedCNN.batchSize=8",
      "supervisedCNN.learningRate=0.01", "classifier.kind=logistic",
    ] {
      try configuration.apply(assignment)
    }
    return configuration
  }

  func testDefaultPresetSeparatesTheFixtureAndRoundTrips() throws {
    let cache = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: cache) }
    let (result, provider) = try DetectionFixture.train(try Self.configuration(), cache: cache)
    let auc = DetectionFixture.auc(result.testExamples)
    XCTAssertGreaterThanOrEqual(auc, 0.9, "test-split ROC-AUC \(auc)")
    XCTAssertEqual(result.testExamples.count, 30)
    XCTAssertTrue(result.testExamples[0].features.keys.contains("supervised_cnn"))
    // The CNN score alone separates the fixture.
    let alone = result.testExamples.map {
      ScoredExample(
        score: Float($0.features["supervised_cnn"] ?? 0), isAttack: $0.isAttack, family: $0.family,
        source: $0.source, tokens: $0.tokens, features: [:])
    }
    XCTAssertGreaterThanOrEqual(DetectionFixture.auc(alone), 0.85)

    try DetectionFixture.assertBundleReproducesTestScores(
      result, provider: provider, url: cache.appendingPathComponent("model.safetensors"))
  }

  func testSameSeedGivesIdenticalBundlesAndAnotherSeedDiffers() throws {
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    var configuration = try Self.configuration()
    var digests: [String] = []
    for seed: UInt64 in [42, 42, 7] {
      configuration.seed = seed
      let (result, _) = try DetectionFixture.train(
        configuration, cache: directory.appendingPathComponent("cache"))
      let url = directory.appendingPathComponent("model\(digests.count).safetensors")
      try result.bundle.write(to: url)
      digests.append(try ModelBundle.modelID(of: url))
    }
    XCTAssertEqual(digests[0], digests[1])
    XCTAssertNotEqual(digests[0], digests[2])
  }

  func testOlderConfigurationsWithoutTheSectionStillDecode() throws {
    let reference = try DetectorConfiguration.preset(named: "reference")
    XCTAssertFalse(reference.json().contains("supervisedCNN"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(reference.json()), reference)
    let preset = try DetectorConfiguration.preset(named: "supervised-cnn")
    XCTAssertEqual(try DetectorConfiguration.fromJSON(preset.json()), preset)
    var bad = preset
    XCTAssertThrowsError(try bad.apply("supervisedCNN.crop=0"))
  }

  func testNewSettingsDecodeAbsentAsTheOldBehaviourAndAreValidated() throws {
    var preset = try DetectorConfiguration.preset(named: "supervised-cnn")
    XCTAssertEqual(preset.supervisedCNN?.ensemble, 1)
    XCTAssertEqual(preset.supervisedCNN?.outOfFold, false)
    XCTAssertEqual(preset.supervisedCNN?.memberKernelSizes, [])
    // At their defaults the new fields stay out of the stored JSON, which is then what bundles
    // written before they existed hold (so retraining keeps the bytes).
    let stored = preset.json()
    XCTAssertTrue(stored.contains("\"supervisedCNN\":{\"batchSize\":32,"), stored)
    XCTAssertFalse(stored.contains("ensemble"))
    XCTAssertFalse(stored.contains("outOfFold"))
    XCTAssertFalse(stored.contains("memberKernelSizes"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(stored), preset)
    // Overrides may name them all the same, and then they are stored.
    try preset.apply("supervisedCNN.ensemble=3")
    try preset.apply("supervisedCNN.outOfFold=true")
    try preset.apply("supervisedCNN.memberKernelSizes=2,3,5")
    XCTAssertTrue(preset.json().contains("\"ensemble\":3"))
    XCTAssertTrue(preset.json().contains("\"memberKernelSizes\":[2,3,5]"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(preset.json()), preset)
    XCTAssertEqual(preset.supervisedCNN?.kernelSize(member: 4), 3)
    var bad = try DetectorConfiguration.preset(named: "supervised-cnn")
    XCTAssertThrowsError(try bad.apply("supervisedCNN.ensemble=0"))
    XCTAssertThrowsError(try bad.apply("supervisedCNN.outOfFold=true"))
    XCTAssertThrowsError(try bad.apply("supervisedCNN.memberKernelSizes=3,0"))
    XCTAssertThrowsError(try bad.apply("supervisedCNN.ensembel=2"))
  }

  func testCombineAveragesMembersAndTakesTheHeldOutMemberForOutOfFoldRows() {
    let raw = Matrix(rows: 3, columns: 3, storage: [1, 2, 6, -3, 0, 0, 4, 5, 9])
    let mean = SupervisedTokenCNNBlock.combine(raw, folds: [])
    XCTAssertEqual(mean.columns, 1)
    XCTAssertEqual(mean.storage, [3, -1, 6])
    let outOfFold = SupervisedTokenCNNBlock.combine(raw, folds: [2, nil, 0])
    XCTAssertEqual(outOfFold.storage, [6, -1, 4])
  }

  func testGroupFoldsAreStableAndCoverEveryFold() {
    let groups = (0..<300).map { "group-\($0)" }
    let folds = groups.map { SupervisedTokenCNNBlock.fold(ofGroup: $0, folds: 3) }
    XCTAssertEqual(folds, groups.map { SupervisedTokenCNNBlock.fold(ofGroup: $0, folds: 3) })
    for fold in 0..<3 {
      let share = Double(folds.filter { $0 == fold }.count) / Double(folds.count)
      XCTAssertGreaterThan(share, 0.2, "fold \(fold)")
    }
    XCTAssertTrue(folds.allSatisfy { (0..<3).contains($0) })
  }

  func testSampleWeightsBalanceClassesAndDampLargeFamilies() {
    let isAttack = [false, false, true, true, true, true, true]
    let families = ["b", "b", "big", "big", "big", "big", "small"]
    let weights = SupervisedTokenCNNBlock.sampleWeights(isAttack: isAttack, families: families)
    let benign = weights[0] + weights[1]
    let attack = weights[2...].reduce(0, +)
    XCTAssertEqual(benign, attack, accuracy: 1e-4)
    XCTAssertEqual(benign + attack, Float(isAttack.count), accuracy: 1e-4)
    // 1/√4 against 1/√1.
    XCTAssertEqual(weights[6] / weights[2], 2, accuracy: 1e-4)
  }

  func testOutOfFoldEnsembleStoresEveryMemberAndReportsTheirMean() throws {
    let cache = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: cache) }
    var configuration = try Self.configuration()
    try configuration.apply("supervisedCNN.ensemble=2")
    try configuration.apply("supervisedCNN.outOfFold=true")
    try configuration.apply("supervisedCNN.memberKernelSizes=2,3")
    let (result, provider) = try DetectionFixture.train(configuration, cache: cache)
    XCTAssertGreaterThanOrEqual(DetectionFixture.auc(result.testExamples), 0.85)
    let url = cache.appendingPathComponent("model.safetensors")
    try result.bundle.write(to: url)
    let loaded = try ModelBundle.read(from: url, encoderSHA256: nil)
    let names = loaded.model.blocks.flatMap { $0.exportTensors().map(\.name) }
    XCTAssertTrue(names.contains("block.supervised_cnn.conv.weight"), "\(names)")
    XCTAssertTrue(names.contains("block.supervised_cnn.member1.conv.weight"), "\(names)")
    // Conv1D weights are `[k, d, f]`.
    let shapes = Dictionary(
      loaded.model.blocks.flatMap { $0.exportTensors() }.map { ($0.name, $0.shape) },
      uniquingKeysWith: { first, _ in first })
    XCTAssertEqual(shapes["block.supervised_cnn.conv.weight"]?.first, 2)
    XCTAssertEqual(shapes["block.supervised_cnn.member1.conv.weight"]?.first, 3)
    guard let block = loaded.model.blocks.first(where: { $0 is SupervisedTokenCNNBlock }) else {
      return XCTFail("no supervised_cnn block")
    }
    let corpus = try DetectionFixture.corpus()
    let test = corpus.select(splits: [.test], labels: [.benign, .adversarial])
    let embeddings = try provider.embed(test.map { corpus.records[$0].text })
    let raw = block.extract(FeatureBatch(embeddings: embeddings, network: nil))
    XCTAssertEqual(raw.columns, 2)
    XCTAssertNotEqual(raw.storage[0], raw.storage[1], "members share their weights")
    let feature = try block.transform(raw, trainingRows: [])
    for (row, example) in result.testExamples.enumerated() {
      let mean = (raw.storage[row * 2] + raw.storage[row * 2 + 1]) / 2
      XCTAssertEqual(feature.storage[row], mean, accuracy: 1e-5)
      XCTAssertEqual(example.features["supervised_cnn"] ?? .nan, mean, accuracy: 1e-3)
    }
    // A short prompt scores the same alone (its batch trimmed to its rows) and next to a long one
    // (its window padded to the crop).
    let short = try provider.embed(["hi there"])
    XCTAssertLessThan(short[0].hidden.rows, 8)
    let alone = block.extract(FeatureBatch(embeddings: short, network: nil))
    let padded = block.extract(FeatureBatch(embeddings: short + embeddings, network: nil))
    for member in 0..<2 {
      XCTAssertEqual(alone.storage[member], padded.storage[member], accuracy: 1e-4)
      XCTAssertNotEqual(alone.storage[member], 0)
    }
  }

  func testLexicalRowsSettingIsStoredValidatedAndAbsentInOlderConfigurations() throws {
    var preset = try DetectorConfiguration.preset(named: "supervised-cnn")
    XCTAssertEqual(preset.supervisedCNN?.rows, "encoder")
    XCTAssertFalse(preset.json().contains("\"rows\""))
    try preset.apply("supervisedCNN.rows=lexical")
    XCTAssertTrue(preset.json().contains("\"rows\":\"lexical\""))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(preset.json()), preset)
    XCTAssertThrowsError(try preset.apply("supervisedCNN.rows=hidden"))
  }

  /// `rows=lexical`: the networks read the encoder's context-free token rows, which every
  /// `EmbeddingProvider` embedding carries (cache hits too); the scores differ from the
  /// encoder-row networks', the bundle reproduces them through a `Detector`, and without a
  /// lexicon training refuses and scoring reads no rows.
  func testLexicalRowsNetworkTrainsScoresAndNeedsTheLexicon() throws {
    let cache = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: cache) }
    var configuration = try Self.configuration()
    try configuration.apply("supervisedCNN.rows=lexical")
    let (result, provider) = try DetectionFixture.train(configuration, cache: cache)
    let (encoderRows, _) = try DetectionFixture.train(try Self.configuration(), cache: cache)
    XCTAssertGreaterThanOrEqual(DetectionFixture.auc(result.testExamples), 0.85)
    let lexicalScores = result.testExamples.map { $0.features["supervised_cnn"] ?? .nan }
    let encoderScores = encoderRows.testExamples.map { $0.features["supervised_cnn"] ?? .nan }
    XCTAssertNotEqual(lexicalScores, encoderScores)
    let url = cache.appendingPathComponent("model.safetensors")
    try DetectionFixture.assertBundleReproducesTestScores(result, provider: provider, url: url)

    let corpus = try DetectionFixture.corpus()
    let texts = corpus.select(splits: [.test], labels: [.benign, .adversarial]).map {
      corpus.records[$0].text
    }
    let embedded = try provider.embed(texts)  // every one a cache hit by now
    for embedding in embedded {
      let rows = try XCTUnwrap(try embedding.lexicalRows())
      XCTAssertEqual(rows, try provider.encoder.model.lexicalRows(ids: embedding.ids))
    }
    let loaded = try ModelBundle.read(from: url, encoderSHA256: nil)
    guard var block = loaded.model.blocks.compactMap({ $0 as? SupervisedTokenCNNBlock }).first else {
      return XCTFail("no supervised_cnn block")
    }
    let scored = block.extract(FeatureBatch(embeddings: embedded, network: nil))
    for (row, example) in result.testExamples.enumerated() {
      XCTAssertEqual(scored.storage[row], example.features["supervised_cnn"] ?? .nan, accuracy: 1e-3)
    }
    let bare = embedded.map { embedding -> PromptEmbedding in
      var copy = embedding
      copy.lexicon = nil
      return copy
    }
    XCTAssertEqual(bare, embedded, "the lexicon is not part of equality")
    // Without a lexicon every prompt reads as having no rows: one constant score.
    let blind = block.extract(FeatureBatch(embeddings: bare, network: nil)).storage
    XCTAssertEqual(Set(blind).count, 1, "\(blind)")
    var random = NetworkRandom(seed: 1)
    let isAttack = (0..<bare.count).map { $0 % 2 == 0 }
    XCTAssertThrowsError(
      try block.train(
        indices: Array(bare.indices), isAttack: isAttack, families: bare.map { _ in "f" },
        groups: bare.indices.map { "g\($0)" }, load: { slice in slice.map { bare[$0] } }, random: &random,
        progress: nil)
    ) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidInput)
      XCTAssertTrue("\(error)".contains("lexicon"), "\(error)")
    }
  }
}
