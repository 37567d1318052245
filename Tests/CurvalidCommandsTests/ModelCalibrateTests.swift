import Foundation
import TestSupport
import XCTest

/// `curvalid model calibrate`: a bundle's threshold set again on a benign sample, written as a new
/// bundle whose scores are the original's.
final class ModelCalibrateTests: XCTestCase {
  static let encoder = Fixtures.url("encoder/tiny-bert").path
  nonisolated(unsafe) static var directory: URL?

  override class func setUp() {
    super.setUp()
    guard let directory = try? makeTemporaryDirectory(prefix: "curvalid-calibrate") else { return }
    self.directory = directory
    // A chunked bundle with segments: its part thresholds must move with the new threshold.
    let tiny = [
      "featureNetwork.length=16", "featureNetwork.epochs=20", "featureNetwork.batchSize=16",
      "featureNetwork.filters1=8", "featureNetwork.filters2=8", "featureNetwork.dense=16", "lidK=8",
      "classifier.hidden=32,16", "classifier.epochs=100", "classifier.batchSize=16", "classifier.patience=40",
      "classifier.learningRate=0.01", "targetFalsePositiveRate=0.05", "chunking.stride=4",
      "chunking.length=8",
    ].flatMap { ["--set", $0] }
    _ = try? BinaryRunner.run(
      [
        "train", "--corpus", Fixtures.url("detection/corpus.jsonl").path, "--encoder", encoder,
        "--cache-dir", directory.path + "/cache", "--preset", "default",
        "--output", directory.path + "/model.safetensors",
      ] + tiny)
  }

  override class func tearDown() {
    if let directory { try? FileManager.default.removeItem(at: directory) }
    super.tearDown()
  }

  private var directory: URL { get throws { try XCTUnwrap(Self.directory) } }

  private func model() throws -> String {
    let path = try directory.appendingPathComponent("model.safetensors").path
    try XCTSkipUnless(FileManager.default.fileExists(atPath: path), "training the bundle failed")
    return path
  }

  /// The fixture corpus's benign prompts as a text sample (one per line), `count` of them.
  private func sample(_ count: Int, name: String) throws -> String {
    let lines = try String(contentsOf: Fixtures.url("detection/corpus.jsonl"), encoding: .utf8)
      .split(separator: "\n")
    var prompts: [String] = []
    for line in lines {
      let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      if object["label"] as? String == "benign", let text = object["text"] as? String {
        prompts.append(text.replacingOccurrences(of: "\n", with: " "))
      }
    }
    XCTAssertGreaterThanOrEqual(prompts.count, count)
    let path = try directory.appendingPathComponent(name).path
    try (prompts.prefix(count).joined(separator: "\n") + "\n").write(
      toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  private func scores(_ bundle: String, input: String) throws -> [Float] {
    let output = try directory.appendingPathComponent("scores-\(UUID().uuidString).jsonl").path
    let result = try BinaryRunner.run(
      ["score", "--model", bundle, "--input", input, "--output", output, "--encoder", Self.encoder])
    XCTAssertEqual(result.status, 0, result.standardError)
    return try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n").map { line in
      let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      return Float(try XCTUnwrap(object["score"] as? Double))
    }
  }

  private func inspect(_ bundle: String) throws -> [String: Any] {
    let result = try BinaryRunner.run(["model", "inspect", bundle, "--json"])
    XCTAssertEqual(result.status, 0, result.standardError)
    return try XCTUnwrap(JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
  }

  /// The new threshold is the one `Metrics.threshold` gives on the sample's decision scores: just
  /// above the (⌊0.1 · 40⌋ + 1)-th highest; the scores themselves do not change.
  func testThresholdComesFromTheSamplesDecisionScores() throws {
    let original = try model()
    let input = try sample(40, name: "benign.txt")
    let calibrated = try directory.appendingPathComponent("calibrated.safetensors").path
    let result = try BinaryRunner.run([
      "model", "calibrate", original, "--benign", input, "--target-fpr", "0.1", "--output", calibrated,
      "--encoder", Self.encoder, "--json",
    ])
    XCTAssertEqual(result.status, 0, result.standardError)
    XCTAssertTrue(
      result.standardError.contains("rests on"), "fewer than 10 rejections: \(result.standardError)")
    let reply = try XCTUnwrap(JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])

    let before = try scores(original, input: input)
    XCTAssertEqual(before.count, 40)
    let expected = before.sorted(by: >)[4].nextUp
    let after = try inspect(calibrated)
    let threshold = Float(try XCTUnwrap(after["threshold"] as? Double))
    XCTAssertEqual(threshold, expected)
    XCTAssertEqual(Float(try XCTUnwrap(reply["threshold"] as? Double)), expected)
    XCTAssertEqual(reply["prompts"] as? Int, 40)
    XCTAssertEqual(reply["flagged"] as? Int, before.filter { $0 >= expected }.count)
    XCTAssertLessThanOrEqual(try XCTUnwrap(reply["flagged"] as? Int), 4)
    XCTAssertEqual(reply["model_id"] as? String, after["model_id"] as? String)
    XCTAssertEqual(try scores(calibrated, input: input), before, "same tensors, same scores")

    let old = try inspect(original)
    let evaluation = try XCTUnwrap(after["evaluation"] as? [String: Any])
    XCTAssertEqual(evaluation["calibration_target_fpr"] as? Double, 0.1)
    XCTAssertEqual(evaluation["calibration_prompts"] as? Double, 40)
    XCTAssertEqual(
      Float(try XCTUnwrap(evaluation["trained_threshold"] as? Double)),
      Float(try XCTUnwrap(old["threshold"] as? Double)))
    XCTAssertEqual(
      (after["chunking"] as? [String: Any])?["segment_shift"] as? Double,
      (old["chunking"] as? [String: Any])?["segment_shift"] as? Double, "the part shifts are kept")
    let text = try BinaryRunner.run(["model", "inspect", calibrated])
    XCTAssertTrue(
      text.output.contains("(set by `model calibrate` to a 10% target FPR on 40 benign prompts"), text.output)
    XCTAssertTrue(text.output.contains("at the trained threshold"), text.output)
    XCTAssertTrue(
      text.output.contains(
        "prompts at training, moved with the threshold by model calibrate; segment logit shift"),
      text.output)
    let plain = try BinaryRunner.run(["model", "inspect", original])
    XCTAssertFalse(plain.output.contains("moved with the threshold"), plain.output)

    // Calibrated again, the first training threshold stays recorded.
    let twice = try directory.appendingPathComponent("twice.safetensors").path
    let again = try BinaryRunner.run([
      "model", "calibrate", calibrated, "--benign", input, "--target-fpr", "0.05", "--output", twice,
      "--encoder", Self.encoder,
    ])
    XCTAssertEqual(again.status, 0, again.standardError)
    XCTAssertTrue(again.output.contains("at a 5% target FPR on 40 benign prompts"), again.output)
    let evaluationTwice = try XCTUnwrap(try inspect(twice)["evaluation"] as? [String: Any])
    XCTAssertEqual(
      evaluationTwice["trained_threshold"] as? Double, evaluation["trained_threshold"] as? Double)
    XCTAssertEqual(
      Float(try XCTUnwrap(try inspect(twice)["threshold"] as? Double)), before.sorted(by: >)[2].nextUp)
  }

  /// `--benign -` reads the sample from standard input (here as JSONL, `--format jsonl`): the same
  /// prompts give the same threshold as the file, and a bad record is named by its line there.
  func testSampleFromStandardInput() throws {
    let original = try model()
    let input = try sample(40, name: "piped.txt")
    let prompts = try String(contentsOfFile: input, encoding: .utf8).split(separator: "\n")
    let records = try prompts.map { prompt in
      String(decoding: try JSONSerialization.data(withJSONObject: ["text": String(prompt)]), as: UTF8.self)
    }
    let fromFile = try directory.appendingPathComponent("from-file.safetensors").path
    let fromPipe = try directory.appendingPathComponent("from-pipe.safetensors").path
    let file = try BinaryRunner.run([
      "model", "calibrate", original, "--benign", input, "--target-fpr", "0.1", "--output", fromFile,
      "--encoder", Self.encoder, "--json",
    ])
    XCTAssertEqual(file.status, 0, file.standardError)
    let pipe = try BinaryRunner.run(
      [
        "model", "calibrate", original, "--benign", "-", "--format", "jsonl", "--target-fpr", "0.1",
        "--output", fromPipe, "--encoder", Self.encoder, "--json",
      ], input: Data((records.joined(separator: "\n") + "\n").utf8))
    XCTAssertEqual(pipe.status, 0, pipe.standardError)
    let fileReply = try XCTUnwrap(JSONSerialization.jsonObject(with: file.standardOutput) as? [String: Any])
    let pipeReply = try XCTUnwrap(JSONSerialization.jsonObject(with: pipe.standardOutput) as? [String: Any])
    XCTAssertEqual(pipeReply["prompts"] as? Int, 40)
    XCTAssertEqual(pipeReply["threshold"] as? Double, fileReply["threshold"] as? Double)
    XCTAssertEqual(pipeReply["flagged"] as? Int, fileReply["flagged"] as? Int)

    let refused = try BinaryRunner.run(
      [
        "model", "calibrate", original, "--benign", "-", "--format", "jsonl", "--target-fpr", "0.1",
        "--output", try directory.appendingPathComponent("refused-pipe.safetensors").path,
        "--encoder", Self.encoder,
      ], input: Data((records.prefix(11).joined(separator: "\n") + "\n{\"prompt\": 3}\n").utf8))
    XCTAssertEqual(refused.status, 1, refused.standardError)
    XCTAssertTrue(refused.standardError.contains("standard input line 12: "), refused.standardError)
  }

  /// Bad options are usage errors; a sample that is too small or holds a bad record is refused
  /// with its reason, and no bundle is written.
  func testRefusals() throws {
    let original = try model()
    let input = try sample(12, name: "small.txt")
    let output = try directory.appendingPathComponent("refused.safetensors").path
    let base = ["model", "calibrate", original, "--encoder", Self.encoder]
    for (extra, status, message) in [
      (["--target-fpr", "0.1", "--output", output], Int32(64), "needs --benign"),
      (["--benign", input, "--output", output], 64, "needs --target-fpr"),
      (["--benign", input, "--target-fpr", "0", "--output", output], 64, "between 0 and 1"),
      (["--benign", input, "--target-fpr", "1%", "--output", output], 64, "between 0 and 1"),
      (["--benign", input, "--target-fpr", "0.1"], 64, "needs --output"),
      (["--benign", input, "--target-fpr", "0.1", "--output", original], 64, "must differ from the bundle"),
      (
        ["--benign", input, "--target-fpr", "0.01", "--output", output], 1,
        "needs at least 100 benign prompts"
      ),
      (["--benign", "/nonexistent.txt", "--target-fpr", "0.1", "--output", output], 1, "cannot open"),
    ] {
      let result = try BinaryRunner.run(base + extra)
      XCTAssertEqual(result.status, status, "\(extra): \(result.standardError)")
      XCTAssertTrue(result.standardError.contains(message), "\(extra): \(result.standardError)")
    }
    let blank = try directory.appendingPathComponent("blank.txt").path
    try (try String(contentsOfFile: input, encoding: .utf8) + "   \nlast prompt\n").write(
      toFile: blank, atomically: true, encoding: .utf8)
    let refused = try BinaryRunner.run(base + ["--benign", blank, "--target-fpr", "0.1", "--output", output])
    XCTAssertEqual(refused.status, 1, refused.standardError)
    XCTAssertTrue(
      refused.standardError.contains("blank.txt line 13: the prompt is empty"), refused.standardError)
    // The sample is checked before any model is loaded: its refusal comes first.
    let early = try BinaryRunner.run([
      "model", "calibrate", "/nonexistent.safetensors", "--benign", blank, "--target-fpr", "0.1",
      "--output", output,
    ])
    XCTAssertEqual(early.status, 1, early.standardError)
    XCTAssertTrue(early.standardError.contains("line 13"), early.standardError)
    let json = try directory.appendingPathComponent("bad.jsonl").path
    try "{\"text\": \"fine\"}\n{\"text\": \n".write(toFile: json, atomically: true, encoding: .utf8)
    let invalid = try BinaryRunner.run(base + ["--benign", json, "--target-fpr", "0.5", "--output", output])
    XCTAssertEqual(invalid.status, 1, invalid.standardError)
    XCTAssertTrue(invalid.standardError.contains("bad.jsonl line 2: "), invalid.standardError)
    XCTAssertFalse(FileManager.default.fileExists(atPath: output), "nothing written")
    let wrongAction = try BinaryRunner.run([
      "model", "calibrate", original, "other", "--encoder", Self.encoder,
    ])
    XCTAssertEqual(wrongAction.status, 64)
  }
}
