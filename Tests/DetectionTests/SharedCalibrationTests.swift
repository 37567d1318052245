import Foundation
import TestSupport
import XCTest

@testable import Detection

/// `chunking.calibration = shared`: the target false-positive rate is the budget of the whole
/// decision, and the whole-prompt threshold gets what chunks and segments leave of it.
final class SharedCalibrationTests: XCTestCase {
  func testThePartsShareCountsEachPromptOnce() {
    let chunks: [Float?] = [nil, 0.9, 0.2, nil, 0.95]
    let segments: [Float?] = [0.99, 0.97, nil, nil, 0.1]
    // Prompt 1 is flagged by both and counts once; prompt 0 by its segment; prompt 4 by its chunk.
    XCTAssertEqual(
      DetectorTraining.partFlaggedShare(
        chunks: chunks, chunkThreshold: 0.9, segments: segments, segmentThreshold: 0.97),
      3.0 / 5.0)
    XCTAssertEqual(
      DetectorTraining.partFlaggedShare(
        chunks: chunks, chunkThreshold: 0.9, segments: [], segmentThreshold: nil),
      2.0 / 5.0)
    XCTAssertEqual(
      DetectorTraining.partFlaggedShare(
        chunks: chunks, chunkThreshold: nil, segments: segments, segmentThreshold: 0.98),
      1.0 / 5.0)
    XCTAssertEqual(
      DetectorTraining.partFlaggedShare(chunks: [], chunkThreshold: 0.5, segments: [], segmentThreshold: 0.5),
      0)
    XCTAssertEqual(DetectorTraining.sharedWholeBudget(target: 0.01, partShare: 0.004), 0.006, accuracy: 1e-12)
    XCTAssertEqual(DetectorTraining.sharedWholeBudget(target: 0.01, partShare: 0), 0.01)
    // Parts that flag more than the target leave the whole prompt a quarter of it.
    XCTAssertEqual(DetectorTraining.sharedWholeBudget(target: 0.01, partShare: 0.02), 0.0025)
  }

  func testSharedIsAThirdCalibrationWithCheckedCombinations() throws {
    // Measured and not adopted: the presets keep `separate` (docs/evaluation.md, "Shared budget").
    var configuration = try DetectorConfiguration.preset(named: "default")
    XCTAssertEqual(configuration.chunking?.calibration, "separate")
    XCTAssertEqual(configuration.chunking?.calibrationRule, .separate)
    try configuration.apply("chunking.calibration=shared")
    XCTAssertEqual(configuration.chunking?.calibration, "shared")
    XCTAssertEqual(configuration.chunking?.calibrationRule, .shared)
    XCTAssertEqual(configuration.chunking?.hasOwnPartThresholds, true)
    var joint = configuration
    try joint.apply(["chunking.segments=false", "chunking.calibration=joint"])
    XCTAssertEqual(joint.chunking?.hasOwnPartThresholds, false)
    // An unknown rule is refused with the rules it could be, and the configuration is unchanged.
    XCTAssertThrowsError(try joint.apply("chunking.calibration=Shared")) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidInput)
      XCTAssertTrue("\(error)".contains("joint, separate or shared"), "\(error)")
    }
    XCTAssertEqual(joint.chunking?.calibrationRule, .joint)
    XCTAssertEqual(configuration.chunking?.segments, true, "segments accept shared calibration")
    XCTAssertEqual(try DetectorConfiguration.fromJSON(configuration.json()), configuration)
    var fused = try DetectorConfiguration.preset(named: "phrase-fusion")
    try fused.apply(["classifier.fuseRule=separate", "chunking.calibration=separate"])
    XCTAssertThrowsError(try fused.apply("chunking.calibration=shared")) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidInput)
    }
  }

  /// The same networks and part thresholds as `separate`; the whole-prompt threshold is the
  /// calibration prompts' quantile at the target minus the share of benign training and
  /// calibration prompts that a chunk or a segment flags; the bundle decides as trained.
  func testTheWholePromptThresholdGetsWhatThePartsLeave() throws {
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    var separate = try DetectionFixture.configuration(preset: "whole-prompt")
    try separate.apply([
      "chunking.stride=4", "chunking.length=8", "chunking.calibration=separate", "chunking.segments=true",
      "targetFalsePositiveRate=0.3", "chunking.segmentFalsePositiveRate=0.1",
    ])
    var shared = separate
    try shared.apply("chunking.calibration=shared")
    let cache = directory.appendingPathComponent("cache")
    let corpus = try SegmentScoringTests.segmentedCorpus(in: directory)
    let (before, _) = try DetectionFixture.train(separate, cache: cache, corpus: corpus)
    let (result, provider) = try DetectionFixture.train(shared, cache: cache, corpus: corpus)
    XCTAssertEqual(
      result.bundle.model.classifier.tensors.map(\.values),
      before.bundle.model.classifier.tensors.map(\.values))
    let threshold = result.bundle.threshold
    XCTAssertGreaterThan(threshold, before.bundle.threshold, "a smaller budget, a higher threshold")
    func rawThreshold(_ bundle: ModelBundle, shift: Float?) throws -> Float {
      ScoreFusion.sigmoid(ScoreFusion.logit(bundle.threshold) - (try XCTUnwrap(shift)))
    }
    // The chunk threshold on the raw scale does not move.
    XCTAssertEqual(
      try rawThreshold(result.bundle, shift: result.bundle.model.chunkShift),
      try rawThreshold(before.bundle, shift: before.bundle.model.chunkShift), accuracy: 1e-4)

    // Recompute the budget from the bundle's own scores.
    let records = corpus.records
    let calibration = corpus.select(splits: [.validation], labels: [.benign])
      .filter { DetectorTraining.groupHash(records[$0]) % 2 == 0 }
    let benign = calibration + corpus.select(splits: [.train], labels: [.benign])
    let texts = benign.map { records[$0].text }
    let model = result.bundle.model
    let chunks = try model.chunkScores(texts, embeddings: provider)
    let segments = try model.segmentScores(texts, embeddings: provider)
    let flagged = zip(chunks, segments).filter { chunk, segment in
      let byChunk = chunk.map { ScoringModel.shifted($0, by: model.chunkShift) >= threshold } ?? false
      let bySegment = segment.map { ScoringModel.shifted($0, by: model.segmentShift) >= threshold } ?? false
      return byChunk || bySegment
    }
    let share = Double(flagged.count) / Double(texts.count)
    XCTAssertGreaterThan(share, 0, "the parts flag some benign prompts in this corpus")
    let wholeScores = try model.evaluate(
      try provider.embed(calibration.map { records[$0].text }), explain: false
    ).map(\.score)
    let budget = DetectorTraining.sharedWholeBudget(target: 0.3, partShare: share)
    let expected = try Metrics.threshold(forBenignScores: wholeScores, targetFalsePositiveRate: budget)
    XCTAssertEqual(threshold, expected, accuracy: 1e-5)
    XCTAssertEqual(
      try XCTUnwrap(result.bundle.evaluation["whole_prompt_fpr_budget"]), budget, accuracy: 1e-12)
    XCTAssertNil(before.bundle.evaluation["whole_prompt_fpr_budget"])

    let url = directory.appendingPathComponent("shared.safetensors")
    try DetectionFixture.assertBundleReproducesTestScores(
      result, provider: provider, url: url, corpus: corpus)
    let reloaded = try ModelBundle.read(from: url, encoderSHA256: nil)
    XCTAssertEqual(reloaded.configuration.chunking?.calibration, "shared")
    XCTAssertEqual(reloaded.model.chunkShift, model.chunkShift)
    XCTAssertEqual(reloaded.model.segmentShift, model.segmentShift)
    try DetectionFixture.assertRefusedWithout(tensor: "chunking.shift", bundle: url)
  }
}
