import Detection
import Embeddings
import Foundation
import TestSupport
import XCTest

/// A detector whose encoder's top layer is fine-tuned first (`encoderTuning`): training, the
/// bundle's tuned layer, scoring through the tuned encoder, caches and refusals.
final class EncoderTunedDetectorTests: XCTestCase {
  /// The `encoder-tuned` preset scaled to the fixture (tiny encoder, 60 prompts).
  static func configuration() throws -> DetectorConfiguration {
    var configuration = try DetectionFixture.configuration(preset: "encoder-tuned")
    for assignment in [
      "encoderTuning.epochs=3", "encoderTuning.crop=16", "encoderTuning.batchSize=8",
      "encoderTuning.learningRate=0.001", "encoderTuning.headLearningRate=0.01",
    ] {
      try configuration.apply(assignment)
    }
    return configuration
  }

  func testOverrideOfAnAbsentSectionTurnsTuningOnWithDefaults() throws {
    var configuration = try DetectorConfiguration.preset(named: "default")
    XCTAssertNil(configuration.encoderTuning)
    XCTAssertFalse(
      configuration.json().contains("encoderTuning"), "absent tuning leaves the stored JSON as it was")
    try configuration.apply("encoderTuning.epochs=2")
    var expected = DetectorConfiguration.EncoderTuning()
    expected.epochs = 2
    XCTAssertEqual(configuration.encoderTuning, expected)
    XCTAssertEqual(try DetectorConfiguration.fromJSON(configuration.json()), configuration)
    XCTAssertThrowsError(try configuration.apply("encoderTuning.layers=0"))
    XCTAssertThrowsError(try configuration.apply("encoderTuning.learningRate=-1"))
    XCTAssertThrowsError(try configuration.apply("encoderTuning.nonsense=1"))
    XCTAssertThrowsError(try configuration.apply("maxWindows=0")) { error in
      XCTAssertTrue("\(error)".contains("maxWindows=1"), "\(error)")
    }
    XCTAssertEqual(try DetectorConfiguration.preset(named: "encoder-tuned").encoderTuning?.layers, 1)
  }

  func testTunedDetectorTrainsStoresAndScoresThroughItsTunedLayer() throws {
    let root = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let cache = root.appendingPathComponent("embeddings", isDirectory: true)
    let (result, provider) = try DetectionFixture.train(try Self.configuration(), cache: cache)
    let frozenTop = try XCTUnwrap(provider.encoder.model.layers.last)
    let tuned = result.bundle.model.tunedLayers
    XCTAssertEqual(tuned.count, 1)
    XCTAssertNotEqual(tuned.first, frozenTop, "the top layer was trained")
    XCTAssertEqual(tuned.first?.qkvWeight.count, frozenTop.qkvWeight.count)
    XCTAssertGreaterThanOrEqual(DetectionFixture.auc(result.testExamples), 0.8)

    // The frozen states and the tuned rows are cached beside the frozen encoder's cache, never in it.
    let siblings = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
    XCTAssertTrue(siblings.contains("embeddings-layers1"), "\(siblings)")
    XCTAssertEqual(siblings.filter { $0.hasPrefix("embeddings-tuned-") }.count, 1, "\(siblings)")
    XCTAssertFalse(FileManager.default.fileExists(atPath: cache.path), "the frozen last layer is not needed")

    // Bundle round trip keeps the layer; the detector runs the tuned encoder (full passes in
    // float32, where training read half-precision cached states: small differences only).
    let url = root.appendingPathComponent("tuned.safetensors")
    try DetectionFixture.assertBundleReproducesTestScores(
      result, provider: provider, url: url, accuracy: 2e-2)
    let read = try ModelBundle.read(from: url, encoderSHA256: nil)
    XCTAssertEqual(read.model.tunedLayers, tuned)
    let detector = try Detector(bundle: read, encoder: provider.encoder, modelID: "00000000")
    XCTAssertEqual(detector.encoder.model.layers.last, tuned.first)
    XCTAssertEqual(detector.baseEncoder.model.layers.last, frozenTop)

    // The evaluation runner scores with the tuned rows too (the cached ones: the same scores).
    let run = try EvaluationRunner.testSplit(
      bundle: read, modelID: "00000000", corpus: try DetectionFixture.corpus(), embeddings: provider)
    XCTAssertEqual(run.examples.map(\.score), result.testExamples.map(\.score))
  }

  func testTunedTrainingIsDeterministic() throws {
    let root = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    var bytes: [Data] = []
    for run in 0..<2 {
      let (result, _) = try DetectionFixture.train(try Self.configuration(), cache: nil)
      let url = root.appendingPathComponent("run\(run).safetensors")
      try result.bundle.write(to: url)
      bytes.append(try Data(contentsOf: url))
    }
    XCTAssertEqual(bytes[0], bytes[1])
  }

  func testBundleMissingATunedTensorOrMadeForAnotherEncoderIsRefused() throws {
    let root = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: root) }
    let (result, provider) = try DetectionFixture.train(try Self.configuration(), cache: nil)
    let url = root.appendingPathComponent("tuned.safetensors")
    try result.bundle.write(to: url)
    let file = try SafetensorsFile(contentsOf: url)
    func copy(dropping dropped: String, to name: String) throws -> URL {
      var tensors: [SafetensorsWriter.Tensor] = []
      for tensorName in file.tensorNames where tensorName != dropped {
        let info = try XCTUnwrap(file.info(tensorName))
        tensors.append(
          SafetensorsWriter.Tensor(name: tensorName, shape: info.shape, values: try file.floats(tensorName)))
      }
      let target = root.appendingPathComponent(name)
      try SafetensorsWriter.write(tensors, metadata: file.metadata, to: target)
      return target
    }
    let missing = try copy(dropping: "encoder_tuned.0.qkv.bias", to: "missing.safetensors")
    XCTAssertThrowsError(try ModelBundle.read(from: missing, encoderSHA256: nil)) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidBundle)
      XCTAssertTrue("\(error)".contains("qkv.bias"), "\(error)")
    }

    // Layers of another shape than the encoder's: refused when the detector is built.
    var wrong = result.bundle.model.tunedLayers[0]
    wrong.intermediateBias += [0]
    wrong.intermediateWeight += [Float](repeating: 0, count: 32)
    wrong.outputWeight += [Float](repeating: 0, count: 32)
    XCTAssertThrowsError(try provider.encoder.model.replacingTopLayers(with: [wrong]))
  }
}
