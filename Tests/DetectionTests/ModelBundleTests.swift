import Detection
import Embeddings
import Foundation
import TestSupport
import XCTest

/// Bundle refusals: wrong version, wrong encoder, missing tensor, truncated file.
final class ModelBundleTests: XCTestCase {
  private var directory: URL!
  private var bundleURL: URL!

  override func setUpWithError() throws {
    directory = try DetectionFixture.temporaryDirectory()
    bundleURL = directory.appendingPathComponent("model.safetensors")
    let (result, _) = try DetectionFixture.train(try DetectionFixture.configuration(), cache: nil)
    try result.bundle.write(to: bundleURL)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  /// Rewrites the bundle with changed metadata or without a tensor.
  private func rewrite(metadata change: [String: String] = [:], dropping: String? = nil) throws -> URL {
    let file = try SafetensorsFile(contentsOf: bundleURL)
    var tensors: [SafetensorsWriter.Tensor] = []
    for name in file.tensorNames where name != dropping {
      tensors.append(.init(name: name, shape: file.info(name)?.shape ?? [], values: try file.floats(name)))
    }
    let url = directory.appendingPathComponent("changed.safetensors")
    try SafetensorsWriter.write(tensors, metadata: file.metadata.merging(change) { $1 }, to: url)
    return url
  }

  private func assertRefused(_ url: URL, encoder: String? = nil, contains text: String) throws {
    XCTAssertThrowsError(try ModelBundle.read(from: url, encoderSHA256: encoder)) { error in
      let error = error as? DetectionError
      XCTAssertEqual(error?.code, .invalidBundle)
      XCTAssertTrue(error?.message.contains(text) ?? false, error?.message ?? "")
      XCTAssertFalse(error?.message.contains("\n") ?? true)
    }
  }

  func testRoundTripKeepsMetadata() throws {
    let identity = try DetectionFixture.identity()
    let bundle = try ModelBundle.read(from: bundleURL, encoderSHA256: identity.sha256)
    XCTAssertEqual(bundle.encoderName, "tiny-bert")
    XCTAssertEqual(bundle.configuration, try DetectionFixture.configuration())
    XCTAssertEqual(bundle.corpusDigest, try DetectionFixture.corpus().digest)
    XCTAssertEqual(bundle.trainingCounts["benign/home_water"].map { $0 > 0 }, true)
    XCTAssertNotNil(bundle.evaluation["roc_auc"])
    XCTAssertEqual(bundle.model.wireNames, ["prompt_lid", "curvature_conv1", "curvature_conv2"])
    let metadata = try SafetensorsFile(contentsOf: bundleURL).metadata
    XCTAssertEqual(metadata["format_version"], "1")
    XCTAssertEqual(metadata["tool"], DetectorTraining.toolVersion)
  }

  func testWrongFormatVersionIsRefused() throws {
    try assertRefused(try rewrite(metadata: ["format_version": "99"]), contains: "format version 99")
  }

  func testOtherEncoderIsRefused() throws {
    try assertRefused(bundleURL, encoder: String(repeating: "ab", count: 32), contains: "encoder")
  }

  func testMissingTensorIsRefused() throws {
    try assertRefused(try rewrite(dropping: "classifier.output.weight"), contains: "classifier.output.weight")
    try assertRefused(
      try rewrite(dropping: "block.prompt_lid.reference"), contains: "block.prompt_lid.reference")
  }

  func testTruncatedFileIsRefused() throws {
    let data = try Data(contentsOf: bundleURL)
    let url = directory.appendingPathComponent("truncated.safetensors")
    try data.prefix(data.count / 2).write(to: url)
    XCTAssertThrowsError(try ModelBundle.read(from: url, encoderSHA256: nil)) { error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidBundle)
    }
  }
}
