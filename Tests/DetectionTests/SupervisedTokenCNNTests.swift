import Detection
import Embeddings
import Foundation
import TestSupport
import XCTest

/// The `supervised_cnn` block and the `default` preset on the fixture corpus with the tiny encoder.
final class SupervisedTokenCNNTests: XCTestCase {
  /// The default preset shrunk to the fixture's size.
  static func configuration() throws -> DetectorConfiguration {
    var configuration = try DetectionFixture.configuration(preset: "default")
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

    let url = cache.appendingPathComponent("model.safetensors")
    try result.bundle.write(to: url)
    let detector = try Detector(
      contentsOf: url, encoder: provider.encoder, encoderSHA256: try DetectionFixture.identity().sha256)
    let corpus = try DetectionFixture.corpus()
    let test = corpus.select(splits: [.test], labels: [.benign, .adversarial])
    let decisions = detector.score(test.map { corpus.records[$0].text }, explain: false)
    for (decision, example) in zip(decisions, result.testExamples) {
      XCTAssertEqual(try decision.get().score, example.score, accuracy: 2e-3)
    }
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
    let preset = try DetectorConfiguration.preset(named: "default")
    XCTAssertEqual(try DetectorConfiguration.fromJSON(preset.json()), preset)
    var bad = preset
    XCTAssertThrowsError(try bad.apply("supervisedCNN.crop=0"))
  }
}
