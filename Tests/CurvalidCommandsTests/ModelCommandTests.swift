import Foundation
import TestSupport
import XCTest

/// `curvalid model inspect` and `curvalid model compare`, with two different tiny bundles.
final class ModelCommandTests: XCTestCase {
  static let encoder = Fixtures.url("encoder/tiny-bert").path
  static let corpus = Fixtures.url("detection/corpus.jsonl").path
  nonisolated(unsafe) static var directory: URL?

  override class func setUp() {
    super.setUp()
    guard let directory = try? makeTemporaryDirectory(prefix: "curvalid-model") else { return }
    self.directory = directory
    let tiny = [
      "featureNetwork.length=16", "featureNetwork.epochs=40", "featureNetwork.batchSize=16",
      "featureNetwork.filters1=8", "featureNetwork.filters2=8", "featureNetwork.dense=16", "lidK=8",
      "classifier.hidden=32,16", "classifier.epochs=200", "classifier.batchSize=16", "classifier.patience=40",
      "classifier.dropout=0.1", "classifier.learningRate=0.01", "targetFalsePositiveRate=0.05",
    ].flatMap { ["--set", $0] }
    let common = [
      "train", "--corpus", corpus, "--encoder", encoder, "--cache-dir", directory.path + "/cache",
    ]
    _ = try? BinaryRunner.run(
      common + ["--output", directory.path + "/a.safetensors", "--seed", "42"] + tiny)
    _ = try? BinaryRunner.run(
      common + [
        "--output", directory.path + "/b.safetensors", "--seed", "7", "--preset", "embedding-logistic",
      ])
    _ = try? BinaryRunner.run(
      common + ["--output", directory.path + "/fused.safetensors", "--preset", "phrase-fusion"] + tiny)
    _ = try? BinaryRunner.run(
      common + ["--output", directory.path + "/separate.safetensors", "--preset", "phrase-fusion"] + tiny
        + ["--set", "classifier.fuseRule=separate"])
    _ = try? BinaryRunner.run(
      common + ["--output", directory.path + "/members.safetensors"] + tiny + [
        "--set", "classifier.members=2",
      ])
    _ = try? BinaryRunner.run(
      common + ["--output", directory.path + "/shared.safetensors", "--preset", "default"] + tiny
        + ["chunking.stride=4", "chunking.length=8", "chunking.calibration=shared"].flatMap { ["--set", $0] })
  }

  override class func tearDown() {
    if let directory { try? FileManager.default.removeItem(at: directory) }
    super.tearDown()
  }

  private func bundle(_ name: String) throws -> String {
    let path = try XCTUnwrap(Self.directory).appendingPathComponent("\(name).safetensors").path
    try XCTSkipUnless(FileManager.default.fileExists(atPath: path), "training \(name) failed")
    return path
  }

  func testInspectShowsThresholdAndDigest() throws {
    let path = try bundle("a")
    let text = try BinaryRunner.run(["model", "inspect", path])
    XCTAssertEqual(text.status, 0, text.standardError)
    let json = try BinaryRunner.run(["model", "inspect", path, "--json"])
    XCTAssertEqual(json.status, 0, json.standardError)
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json.standardOutput) as? [String: Any])
    let threshold = try XCTUnwrap(object["threshold"] as? Double)
    let encoder = try XCTUnwrap(object["encoder"] as? [String: Any])
    let digest = try XCTUnwrap(encoder["sha256"] as? String)
    XCTAssertEqual(digest.count, 64)
    XCTAssertEqual(object["format_version"] as? String, "1")
    XCTAssertEqual((object["model_id"] as? String)?.count, 8)
    XCTAssertEqual(object["features"] as? [String], ["prompt_lid", "curvature_conv1", "curvature_conv2"])
    XCTAssertEqual(object["blocks"] as? [String], ["prompt_lid", "curvature_conv1", "curvature_conv2"])
    XCTAssertNotNil((object["configuration"] as? [String: Any])?["lidK"])
    XCTAssertNotNil((object["evaluation"] as? [String: Any])?["roc_auc"])
    let corpus = try XCTUnwrap(object["corpus"] as? [String: Any])
    XCTAssertEqual((corpus["sha256"] as? String)?.count, 64)
    XCTAssertFalse((corpus["counts"] as? [String: Int] ?? [:]).isEmpty)
    XCTAssertTrue(text.output.contains("threshold: \(Float(threshold))"), text.output)
    XCTAssertTrue(text.output.contains(digest), text.output)
    XCTAssertTrue(text.output.contains("features: prompt_lid, curvature_conv1, curvature_conv2"), text.output)
    XCTAssertTrue(
      text.output.contains("feature blocks: prompt_lid, curvature_conv1, curvature_conv2"), text.output)
    XCTAssertTrue(object["fused_block"] is NSNull)
    XCTAssertTrue(object["fusion_rule"] is NSNull)
    XCTAssertFalse(text.output.contains("fused"), text.output)
  }

  func testInspectNamesTheFusedBlock() throws {
    let path = try bundle("fused")
    let text = try BinaryRunner.run(["model", "inspect", path])
    XCTAssertEqual(text.status, 0, text.standardError)
    XCTAssertTrue(
      text.output.contains(
        "score: the classifier fused with supervised_cnn by the max rule (benign calibration center / scale:"),
      text.output)
    let json = try BinaryRunner.run(["model", "inspect", path, "--json"])
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json.standardOutput) as? [String: Any])
    XCTAssertEqual(object["fused_block"] as? String, "supervised_cnn")
    XCTAssertEqual(object["fusion_rule"] as? String, "max")
    XCTAssertEqual((object["features"] as? [String])?.last, "supervised_cnn")
  }

  func testInspectNamesTheSeparateRuleAndTheBlockThreshold() throws {
    let path = try bundle("separate")
    let text = try BinaryRunner.run(["model", "inspect", path])
    XCTAssertEqual(text.status, 0, text.standardError)
    // The fixture's target is 5%, so the block's default budget is a quarter of it.
    XCTAssertTrue(
      text.output.contains(
        "score: the classifier at the threshold, or supervised_cnn alone above its own threshold"),
      text.output)
    XCTAssertTrue(
      text.output.contains("(rule separate, 1.25% of the benign calibration prompts)"), text.output)
    let json = try BinaryRunner.run(["model", "inspect", path, "--json"])
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json.standardOutput) as? [String: Any])
    XCTAssertEqual(object["fusion_rule"] as? String, "separate")
  }

  func testInspectNamesTheClassifierMembers() throws {
    let text = try BinaryRunner.run(["model", "inspect", try bundle("members")])
    XCTAssertEqual(text.status, 0, text.standardError)
    XCTAssertTrue(
      text.output.contains(
        "classifier: the mean logit of 2 mlp classifiers trained on the same features from successive seeds"),
      text.output)
    let single = try BinaryRunner.run(["model", "inspect", try bundle("a")])
    XCTAssertFalse(single.output.contains("mean logit"), single.output)
  }

  func testCompareListsDisagreements() throws {
    let a = try bundle("a")
    let b = try bundle("b")
    let cache = try XCTUnwrap(Self.directory).path + "/cache"
    let arguments = [
      "model", "compare", a, b, "--corpus", Self.corpus, "--encoder", Self.encoder, "--cache-dir", cache,
    ]
    let text = try BinaryRunner.run(arguments)
    XCTAssertEqual(text.status, 0, text.standardError)
    XCTAssertTrue(text.output.contains("attack/prompt_injection"), text.output)
    XCTAssertTrue(text.output.contains("ROC-AUC"), text.output)
    let json = try BinaryRunner.run(arguments + ["--json"])
    XCTAssertEqual(json.status, 0, json.standardError)
    let object = try XCTUnwrap(JSONSerialization.jsonObject(with: json.standardOutput) as? [String: Any])
    let disagreements = try XCTUnwrap(object["disagreements"] as? [String: Any])
    let total = try XCTUnwrap(disagreements["total"] as? Int)
    let examples = try XCTUnwrap(disagreements["examples"] as? [[String: Any]])
    XCTAssertGreaterThan(total, 0, "two different bundles should disagree somewhere on the fixture")
    XCTAssertEqual(examples.count, min(total, 20))
    XCTAssertTrue(text.output.contains("disagreements: \(total) of "), text.output)
    for example in examples {
      let decisions = ["a", "b"].map { ((example[$0] as? [String: Any])?["decision"] as? String) ?? "" }
      XCTAssertNotEqual(decisions[0], decisions[1])
      let prompt = try XCTUnwrap(example["text"] as? String)
      XCTAssertTrue(text.output.contains(prompt.prefix(30)), prompt)
      XCTAssertLessThanOrEqual(prompt.count, 101)
    }
    XCTAssertNotNil((object["a"] as? [String: Any])?["attack_families"])
    XCTAssertNotEqual(
      (object["a"] as? [String: Any])?["model_id"] as? String,
      (object["b"] as? [String: Any])?["model_id"] as? String)
  }

  func testCompareWithoutTheCacheAgreesAndWritesNothing() throws {
    let a = try bundle("a")
    let b = try bundle("b")
    let directory = try XCTUnwrap(Self.directory)
    let root = directory.appendingPathComponent("no-cache-root")
    func disagreements(_ extra: [String], environment: [String: String] = [:]) throws -> Int {
      let run = try BinaryRunner.run(
        ["model", "compare", a, b, "--corpus", Self.corpus, "--encoder", Self.encoder, "--json"] + extra,
        environment: environment)
      XCTAssertEqual(run.status, 0, run.standardError)
      let object = try XCTUnwrap(JSONSerialization.jsonObject(with: run.standardOutput) as? [String: Any])
      return try XCTUnwrap((object["disagreements"] as? [String: Any])?["total"] as? Int)
    }
    let fresh = try disagreements(["--no-cache"], environment: ["CURVALID_CACHE_DIR": root.path])
    XCTAssertFalse(FileManager.default.fileExists(atPath: root.path), "--no-cache wrote under the cache root")
    XCTAssertEqual(fresh, try disagreements(["--cache-dir", directory.path + "/cache"]))
    let both = try BinaryRunner.run([
      "model", "compare", a, b, "--corpus", Self.corpus, "--encoder", Self.encoder, "--no-cache",
      "--cache-dir",
      directory.path + "/cache",
    ])
    XCTAssertEqual(both.status, 64)
    XCTAssertTrue(both.standardError.contains("--no-cache"), both.standardError)
  }

  func testUsageErrors() throws {
    for arguments in [
      ["model"], ["model", "frobnicate"], ["model", "inspect"], ["model", "compare", "a", "b"],
      ["model", "compare", "a", "--corpus", "c"], ["model", "inspect", "a", "--target-fpr", "0.01"],
    ] {
      let result = try BinaryRunner.run(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.standardError)")
    }
    // An option the action would ignore is refused, naming the action that takes it.
    for (arguments, message) in [
      (
        ["model", "inspect", "a", "--target-fpr", "0.01"],
        "--target-fpr is not an option of model inspect (it is one of model calibrate)"
      ),
      (
        ["model", "inspect", "a", "--encoder", "e"],
        "--encoder is not an option of model inspect (it is one of model calibrate and model compare)"
      ),
      (
        ["model", "calibrate", "a", "--cache-dir", "d"],
        "--cache-dir is not an option of model calibrate (it is one of model compare)"
      ),
      (
        ["model", "calibrate", "a", "--include-harmful"],
        "--include-harmful is not an option of model calibrate"
      ),
      (
        ["model", "compare", "a", "b", "--corpus", "c", "--benign", "x"],
        "--benign is not an option of model compare"
      ),
    ] {
      let result = try BinaryRunner.run(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.standardError)")
      XCTAssertTrue(result.standardError.contains(message), "\(arguments): \(result.standardError)")
    }
    let missing = try BinaryRunner.run(["model", "inspect", "/nonexistent.safetensors"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(missing.standardError.contains("not found"), missing.standardError)
    let help = try BinaryRunner.run(["model", "--help"])
    XCTAssertTrue(help.output.hasPrefix("usage: curvalid model"), help.output)
  }

  /// A bundle calibrated under `chunking.calibration=shared` names the whole prompt's share of
  /// the target, which its evaluation summary keeps.
  func testInspectNamesTheWholePromptsShareOfASharedTarget() throws {
    let path = try XCTUnwrap(Self.directory).appendingPathComponent("shared.safetensors").path
    XCTAssertTrue(FileManager.default.fileExists(atPath: path), "training the shared bundle failed")
    let text = try BinaryRunner.run(["model", "inspect", path])
    XCTAssertEqual(text.status, 0, text.standardError)
    XCTAssertTrue(
      text.output.contains("calibration shared, the whole prompt's share of the 5.00% target "), text.output)
    XCTAssertTrue(text.output.contains("whole_prompt_fpr_budget: 0.0"), text.output)
    let plain = try BinaryRunner.run(["model", "inspect", try bundle("a")])
    XCTAssertFalse(plain.output.contains("whole_prompt_fpr_budget"), plain.output)
  }
}
