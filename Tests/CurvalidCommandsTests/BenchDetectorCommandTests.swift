import Foundation
import TestSupport
import XCTest

/// `curvalid bench detector` on a tiny bundle with every block the shipped model has, and segment
/// scoring, prints well-formed measurements; values are not asserted (speed is measured in benchmarks, not
/// tests).
final class BenchDetectorCommandTests: XCTestCase {
  static let encoder = Fixtures.url("encoder/tiny-bert").path
  nonisolated(unsafe) static var directory: URL?
  nonisolated(unsafe) static var training: BinaryRunner.Result?

  override class func setUp() {
    super.setUp()
    guard let directory = try? makeTemporaryDirectory(prefix: "curvalid-bench-detector") else { return }
    self.directory = directory
    let settings = [
      "featureNetwork.length=16", "featureNetwork.epochs=5", "featureNetwork.filters1=8",
      "featureNetwork.filters2=8", "featureNetwork.dense=16", "lidK=8", "supervisedCNN.crop=8",
      "supervisedCNN.filters=8", "supervisedCNN.epochs=2", "classifier.epochs=20", "chunking.segments=true",
      "chunking.calibration=separate",
    ]
    training = try? BinaryRunner.run(
      [
        "train", "--corpus", Fixtures.url("detection/corpus.jsonl").path, "--encoder", encoder, "--output",
        directory.path + "/model.safetensors", "--cache-dir", directory.path + "/cache", "--preset",
        "supervised-cnn", "--set",
        "features=supervised_cnn,mean_embedding,prompt_lid,curvature_conv1,curvature_conv2,log_tokens",
      ] + settings.flatMap { ["--set", $0] })
  }

  override class func tearDown() {
    if let directory { try? FileManager.default.removeItem(at: directory) }
    super.tearDown()
  }

  /// The tiny bundle; a failed training skips locally and fails under `CI=true`.
  private func bundle() throws -> String {
    let path = try XCTUnwrap(Self.directory).appendingPathComponent("model.safetensors").path
    if !FileManager.default.fileExists(atPath: path) {
      let reason = "training the tiny bundle failed: \(Self.training?.standardError ?? "did not run")"
      if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail(reason) }
      throw XCTSkip(reason)
    }
    return path
  }

  func testJSONRowsHaveEveryFieldAndEveryStage() throws {
    let result = try BinaryRunner.run([
      "bench", "detector", "--model", try bundle(), "--encoder", Self.encoder, "--lengths", "8,40",
      "--runs", "20", "--threads", "1", "--json",
    ])
    XCTAssertEqual(result.status, 0, result.standardError)
    let rows = try result.output.split(separator: "\n").map {
      try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    XCTAssertEqual(rows.compactMap { $0["threads"] as? Int }, [1, 1])
    XCTAssertEqual(rows.compactMap { $0["tokens"] as? Int }, [8, 40])
    for row in rows {
      for part in ["encoder", "after_encoder", "score"] {
        let values = try ["min", "median", "max"].map {
          try XCTUnwrap(row["\(part)_\($0)_ms"] as? Double, part)
        }
        XCTAssertGreaterThan(values[0], 0, part)
        XCTAssertEqual(values, values.sorted(), part)
      }
      XCTAssertGreaterThan(try XCTUnwrap(row["after_encoder_percent"] as? Double), 0)
      XCTAssertEqual(row["segments"] as? Int, 0, "one sentence is read whole only")
      let stages = try XCTUnwrap(row["stages_median_ms"] as? [String: Double])
      XCTAssertEqual(
        Set(stages.keys),
        [
          "feature_network", "supervised_cnn", "mean_embedding", "prompt_lid", "curvature_conv1",
          "curvature_conv2", "log_tokens", "classifier",
        ])
    }
  }

  /// `--sentence-words 4` writes 38 words as 8 sentences (every fifth word a "."), which the
  /// segment-scoring bundle reads alone; the prompt keeps its 40 tokens.
  func testSentencesAreCountedAsSegments() throws {
    let result = try BinaryRunner.run([
      "bench", "detector", "--model", try bundle(), "--encoder", Self.encoder, "--lengths", "40",
      "--runs", "20", "--threads", "1", "--json", "--sentence-words", "4",
    ])
    XCTAssertEqual(result.status, 0, result.standardError)
    let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    XCTAssertEqual(row["tokens"] as? Int, 40)
    XCTAssertEqual(row["segments"] as? Int, 8)
  }

  func testTableAndArgumentErrors() throws {
    let model = try bundle()
    let table = try BinaryRunner.run([
      "bench", "detector", "--model", model, "--encoder", Self.encoder, "--lengths", "16", "--runs", "20",
      "--threads", "2",
    ])
    XCTAssertEqual(table.status, 0, table.standardError)
    for expected in ["BLAS threads: 2", "after/encoder", "stages after the encoder", "supervised_cnn"] {
      XCTAssertTrue(table.output.contains(expected), expected)
    }
    XCTAssertFalse(table.output.contains("BLAS threads: 1"))
    let help = try BinaryRunner.run(["bench", "detector", "--help"])
    XCTAssertEqual(help.status, 0)
    XCTAssertTrue(help.output.contains("--model FILE"))
    for bad in [
      ["--runs", "5"], ["--lengths", "2"], ["--lengths", "41"], ["extra"], ["--batch", "4"],
      ["--sentence-words", "1"], ["--sentence-words", "x"],
    ] {
      let run = try BinaryRunner.run(
        ["bench", "detector", "--model", model, "--encoder", Self.encoder] + bad)
      XCTAssertEqual(run.status, 64, "\(bad): \(run.standardError)")
    }
    let missing = try BinaryRunner.run(
      ["bench", "detector", "--model", model + ".missing", "--encoder", Self.encoder])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.standardError.contains("not found"), missing.standardError)
  }
}
