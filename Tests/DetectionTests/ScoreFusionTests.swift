import Detection
import Foundation
import TestSupport
import XCTest

/// Score fusion (`classifier.fuse`) and the `logSumExp` token network it is used with.
final class ScoreFusionTests: XCTestCase {
  /// The fixture-sized `supervised-cnn` configuration with the log-sum-exp head, fused.
  static func fusedConfiguration() throws -> DetectorConfiguration {
    var configuration = try SupervisedTokenCNNTests.configuration()
    try configuration.apply("supervisedCNN.pooling=logSumExp")
    try configuration.apply("supervisedCNN.kernelSize=1")
    try configuration.apply("classifier.fuse=supervised_cnn")
    return configuration
  }

  func testStatisticsComeFromTheBenignValuesAndTheScoreAveragesStandardizedInputs() {
    // Logits 1, 3: mean 2, deviation 1. Block 10, 14: mean 12, deviation 2.
    let fusion = ScoreFusion(benignLogits: [1, 3], benignBlock: [10, 14])
    XCTAssertEqual(fusion.values, [2, 1, 12, 2])
    XCTAssertEqual(fusion.score(logit: 2, block: 12), 0.5, accuracy: 1e-6)
    // z = (2 + 0) / 2 = 1 and z = (0 + 3) / 2 = 1.5.
    XCTAssertEqual(fusion.score(logit: 4, block: 12), Float(1 / (1 + exp(-1.0))), accuracy: 1e-5)
    XCTAssertEqual(fusion.score(logit: 2, block: 18), Float(1 / (1 + exp(-1.5))), accuracy: 1e-5)
    // Either detector alone moves the score; opposite evidence of equal size cancels.
    XCTAssertEqual(fusion.score(logit: 4, block: 8), 0.5, accuracy: 1e-6)
    // A non-finite input counts as its benign mean; extreme inputs saturate without NaN.
    XCTAssertEqual(fusion.score(logit: .nan, block: 12), 0.5, accuracy: 1e-6)
    XCTAssertEqual(fusion.score(logit: 1e30, block: 12), 1, accuracy: 1e-6)
    XCTAssertEqual(fusion.score(logit: -1e30, block: 12), 0, accuracy: 1e-6)
    // The `max` rule standardizes by the benign median and the distance to the tail quantile
    // (here 0.99: 99 of 0…100 and 198 of 0, 2, …, 200), then the larger score alone decides.
    let benignLogits = (0...100).map(Float.init)
    let benignBlock = (0...100).map { Float($0 * 2) }
    let either = ScoreFusion(
      benignLogits: benignLogits, benignBlock: benignBlock, rule: .max, tailQuantile: 0.99)
    XCTAssertEqual(either.values, [50, 49, 100, 98])
    let sigmoid = { (z: Double) in Float(1 / (1 + exp(-z))) }
    XCTAssertEqual(either.score(logit: 99, block: 100), sigmoid(1), accuracy: 1e-5)
    XCTAssertEqual(either.score(logit: 50, block: 198), sigmoid(1), accuracy: 1e-5)
    XCTAssertEqual(either.score(logit: 148, block: 0), sigmoid(2), accuracy: 1e-5)
    XCTAssertEqual(either.score(logit: .nan, block: 100), 0.5, accuracy: 1e-6)
    // The `mean` rule on the same values keeps mean and standard deviation.
    let averaged = ScoreFusion(benignLogits: benignLogits, benignBlock: benignBlock)
    XCTAssertEqual(averaged.classifierCenter, 50, accuracy: 1e-4)
    XCTAssertEqual(averaged.classifierScale, Float((10200.0 / 12).squareRoot()), accuracy: 1e-3)
    // Constant benign values: the deviation is floored, not zero.
    let flat = ScoreFusion(benignLogits: [5, 5], benignBlock: [1, 1])
    XCTAssertEqual(flat.classifierScale, 1e-6)
    XCTAssertFalse(flat.score(logit: 5.5, block: 1).isNaN)
  }

  func testSeparateRuleKeepsTheClassifierAndMapsTheBlockThresholdOntoItsThreshold() {
    // Benign logits: median −2; threshold σ(1). Benign block: median 10; its threshold 16. The
    // block maps affinely with scale (16 − 10) / (1 − (−2)) = 2 and center 16 − 1 × 2 = 14.
    let logits: [Float] = [-4, -3, -2, -1, 0]
    let block: [Float] = [8, 9, 10, 11, 12]
    let threshold = Float(1 / (1 + exp(-1.0)))
    let fusion = ScoreFusion(separateLogits: logits, block: block, threshold: threshold, blockThreshold: 16)
    XCTAssertEqual(fusion.rule, .separate)
    XCTAssertEqual(fusion.values[0], 0)
    XCTAssertEqual(fusion.values[1], 1)
    XCTAssertEqual(fusion.values[2], 14, accuracy: 1e-4)
    XCTAssertEqual(fusion.values[3], 2, accuracy: 1e-5)
    // Above the benign median, the classifier's own score whatever a benign-looking block says.
    for logit: Float in [-1.5, 0, 1, 3] {
      XCTAssertEqual(fusion.score(logit: logit, block: 10), ScoreFusion.sigmoid(logit), accuracy: 1e-6)
    }
    // The block at its own threshold lands on the classifier's threshold; its median on the
    // classifier's median; above it, it rejects alone.
    XCTAssertEqual(fusion.score(logit: -6, block: 16), threshold, accuracy: 1e-5)
    XCTAssertEqual(fusion.blockThreshold(onto: threshold), 16, accuracy: 1e-4)
    XCTAssertEqual(fusion.score(logit: -6, block: 10), ScoreFusion.sigmoid(-2), accuracy: 1e-5)
    XCTAssertGreaterThan(fusion.score(logit: -6, block: 16.5), threshold)
    XCTAssertLessThan(fusion.score(logit: -6, block: 15.5), threshold)
    // A degenerate calibration (block threshold at or under its median) only shifts the block.
    let shifted = ScoreFusion(separateLogits: logits, block: block, threshold: threshold, blockThreshold: 9)
    XCTAssertEqual(shifted.values[3], 1)
    XCTAssertEqual(shifted.score(logit: -6, block: 9), threshold, accuracy: 1e-5)
    XCTAssertEqual(shifted.score(logit: .nan, block: 9), threshold, accuracy: 1e-5)
    // A non-finite block feature leaves the classifier's own score.
    XCTAssertEqual(fusion.score(logit: -3, block: .nan), ScoreFusion.sigmoid(-3), accuracy: 1e-6)
    XCTAssertEqual(fusion.score(logit: .nan, block: .nan), 0.5, accuracy: 1e-6)
  }

  func testFuseIsValidatedAndStoredOnlyWhenSet() throws {
    let plain = try DetectorConfiguration.preset(named: "supervised-cnn")
    XCTAssertFalse(plain.json().contains("fuse"))
    XCTAssertFalse(plain.json().contains("pooling"))
    XCTAssertNil(try DetectorConfiguration.fromJSON(plain.json()).classifier.fuse)

    var fused = plain
    try fused.apply("classifier.fuse=supervised_cnn")
    try fused.apply("supervisedCNN.pooling=logSumExp")
    XCTAssertTrue(fused.json().contains("\"fuse\":\"supervised_cnn\""))
    XCTAssertTrue(fused.json().contains("\"pooling\":\"logSumExp\""))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(fused.json()), fused)

    var bad = plain
    XCTAssertThrowsError(try bad.apply("classifier.fuse=log_tokens")) { error in
      XCTAssertTrue("\(error)".contains("not one of the features"), "\(error)")
    }
    XCTAssertThrowsError(try bad.apply("supervisedCNN.pooling=median"))
    var alone = DetectorConfiguration(features: ["supervised_cnn"])
    XCTAssertThrowsError(try alone.apply("classifier.fuse=supervised_cnn"))

    // The rule: absent means `mean` and stays out of the JSON; `max` is stored; others refused.
    XCTAssertFalse(fused.json().contains("fuseRule"))
    XCTAssertEqual(fused.classifier.fuseRule, nil)
    var either = fused
    try either.apply("classifier.fuseRule=max")
    XCTAssertTrue(either.json().contains("\"fuseRule\":\"max\""))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(either.json()), either)
    XCTAssertThrowsError(try either.apply("classifier.fuseRule=median"))
    XCTAssertThrowsError(try bad.apply("classifier.fuseRule=max")) { error in
      XCTAssertTrue("\(error)".contains("needs classifier.fuse"), "\(error)")
    }
    // The block's own budget belongs to the `separate` rule only, and lies in [0, 1).
    XCTAssertThrowsError(try either.apply("classifier.fuseFalsePositiveRate=0.002")) { error in
      XCTAssertTrue("\(error)".contains("needs classifier.fuseRule=separate"), "\(error)")
    }
    var separate = fused
    try separate.apply(["classifier.fuseRule=separate", "classifier.fuseFalsePositiveRate=0.002"])
    XCTAssertEqual(separate.classifier.fuseFalsePositiveRate, 0.002)
    XCTAssertTrue(separate.json().contains("\"fuseFalsePositiveRate\":0.002"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(separate.json()), separate)
    XCTAssertThrowsError(try separate.apply("classifier.fuseFalsePositiveRate=1"))
    XCTAssertFalse(either.json().contains("fuseFalsePositiveRate"))
  }

  func testFusedModelKeepsTheBlockOutOfTheClassifierAndRoundTrips() throws {
    for rule in ["mean", "max", "separate"] {
      var configuration = try Self.fusedConfiguration()
      if rule != "mean" { try configuration.apply("classifier.fuseRule=\(rule)") }
      try assertFusedModelRoundTrips(configuration, rule: rule)
    }
  }

  func testSeparateRuleTrainsTheClassifierAndThresholdOfTheConfigurationWithoutTheBlock() throws {
    var fused = try Self.fusedConfiguration()
    try fused.apply("classifier.fuseRule=separate")
    var plain = fused
    plain.features.removeAll { $0 == "supervised_cnn" }
    plain.classifier.fuse = nil
    plain.classifier.fuseRule = nil
    let (withBlock, _) = try DetectionFixture.train(fused, cache: nil)
    let (withoutBlock, _) = try DetectionFixture.train(plain, cache: nil)
    XCTAssertEqual(withBlock.bundle.threshold, withoutBlock.bundle.threshold)
    XCTAssertEqual(withBlock.bundle.model.featureMean, withoutBlock.bundle.model.featureMean)
    let a = withBlock.bundle.model.classifier.tensors
    let b = withoutBlock.bundle.model.classifier.tensors
    XCTAssertEqual(a.map(\.name), b.map(\.name))
    XCTAssertEqual(a.map(\.values), b.map(\.values), "the block must not change the classifier")
    // So every prompt the classifier alone rejects is still rejected.
    for (fusedExample, plainExample) in zip(withBlock.testExamples, withoutBlock.testExamples)
    where plainExample.score >= withoutBlock.bundle.threshold {
      XCTAssertGreaterThanOrEqual(fusedExample.score, withBlock.bundle.threshold)
    }
  }

  func testSeparateRuleRejectsEveryPromptWhoseBlockPassesItsOwnThreshold() throws {
    var configuration = try Self.fusedConfiguration()
    try configuration.apply(["classifier.fuseRule=separate", "classifier.fuseFalsePositiveRate=0.05"])
    let (result, _) = try DetectionFixture.train(configuration, cache: nil)
    let fusion = try XCTUnwrap(result.bundle.model.fusion)
    let threshold = result.bundle.threshold
    XCTAssertEqual(fusion.classifierCenter, 0)
    XCTAssertEqual(fusion.classifierScale, 1)
    // The block's own threshold on its feature, from the stored mapping.
    let blockThreshold = fusion.blockThreshold(onto: threshold)
    var blockRejections = 0
    for example in result.testExamples {
      let value = try XCTUnwrap(example.features["supervised_cnn"])
      // Off the boundary, the block alone rejects exactly above its threshold.
      guard abs(value - blockThreshold) > 1e-3 * max(1, abs(blockThreshold)) else { continue }
      if value > blockThreshold {
        blockRejections += 1
        XCTAssertGreaterThanOrEqual(example.score, threshold, "block above its threshold must reject")
      } else {
        // Under its threshold the block cannot raise the score to the threshold: the score is
        // the classifier's own or the block's mapped value, whichever is larger.
        XCTAssertLessThan(fusion.score(logit: -80, block: value), threshold)
      }
    }
    XCTAssertGreaterThan(blockRejections, 0, "the fixture's phrase network should reject some attacks alone")
  }

  private func assertFusedModelRoundTrips(_ configuration: DetectorConfiguration, rule: String) throws {
    let cache = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: cache) }
    let (result, provider) = try DetectionFixture.train(configuration, cache: cache)
    let model = result.bundle.model
    XCTAssertGreaterThanOrEqual(DetectionFixture.auc(result.testExamples), 0.9)
    let fusion = try XCTUnwrap(model.fusion)
    XCTAssertEqual(model.fusedBlockIndex, 0)
    XCTAssertEqual(model.classifierWidth, model.featureWidth - 1)
    XCTAssertEqual(model.classifier.inputWidth, model.classifierWidth)
    XCTAssertEqual(model.featureMean.count, model.classifierWidth)
    // The block's own feature is still reported, and it is what the fusion standardizes.
    XCTAssertTrue(result.testExamples.allSatisfy { $0.features["supervised_cnn"] != nil })
    XCTAssertGreaterThan(fusion.blockScale, 1e-6)
    // `separate` leaves the classifier's logit unscaled, so a confident score may round to 1.
    XCTAssertTrue(
      result.testExamples.allSatisfy { $0.score > 0 && (rule == "separate" ? $0.score <= 1 : $0.score < 1) })

    let url = cache.appendingPathComponent("fused.safetensors")
    try DetectionFixture.assertBundleReproducesTestScores(result, provider: provider, url: url)
    XCTAssertEqual(try ModelBundle.read(from: url, encoderSHA256: nil).model.fusion, fusion)
    XCTAssertEqual(fusion.rule.rawValue, rule)
  }

  func testFusingAWideBlockIsRefused() throws {
    var configuration = try DetectionFixture.configuration(preset: "embedding-geometry")
    try configuration.apply("classifier.fuse=mean_embedding")
    XCTAssertThrowsError(try DetectionFixture.train(configuration, cache: nil)) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidInput)
      XCTAssertTrue("\(error)".contains("fusion needs one"), "\(error)")
    }
  }

  func testBundleWithoutItsFusionStatisticsIsRejected() throws {
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let (result, _) = try DetectionFixture.train(try Self.fusedConfiguration(), cache: nil)
    let url = directory.appendingPathComponent("fused.safetensors")
    try result.bundle.write(to: url)
    // Rename the tensor in place (same length), as a damaged or hand-edited bundle would.
    var bytes = try Data(contentsOf: url)
    let name = Data("fusion.statistics".utf8)
    let range = try XCTUnwrap(bytes.range(of: name))
    bytes.replaceSubrange(range, with: Data("fusion.statistic_".utf8))
    try bytes.write(to: url)
    XCTAssertThrowsError(try ModelBundle.read(from: url, encoderSHA256: nil)) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidBundle)
      XCTAssertTrue("\(error)".contains("fusion.statistics"), "\(error)")
    }
  }
}
