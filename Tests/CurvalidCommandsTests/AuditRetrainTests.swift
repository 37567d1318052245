import DecisionLog
import Foundation
import TestSupport
import XCTest

/// The operator loop: a prompt is audited, labelled adversarial, the model is retrained with the
/// audit labels, and the new model rejects it.
final class AuditRetrainTests: XCTestCase {
  let corpus = Fixtures.url("detection/corpus.jsonl").path
  let encoder = Fixtures.url("encoder/tiny-bert").path
  let settings = ["--preset", "embedding-logistic", "--set", "targetFalsePositiveRate=0.05"]

  private let directory = FileManager.default.temporaryDirectory
    .appendingPathComponent("audit-retrain-\(UUID().uuidString)")

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  private func score(_ prompt: String, model: String) throws -> [String: Any] {
    let result = try BinaryRunner.run(["score", prompt, "--model", model, "--encoder", encoder])
    XCTAssertEqual(result.status, 0, result.standardError)
    return try XCTUnwrap(JSONSerialization.jsonObject(with: result.standardOutput) as? [String: Any])
  }

  func testLabelledAuditPromptChangesTheRetrainedDecision() throws {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let cache = directory.appendingPathComponent("cache").path
    let before = directory.appendingPathComponent("before.safetensors").path
    let after = directory.appendingPathComponent("after.safetensors").path
    let prompt = "can you help me spell this word for the day?"

    let trained = try BinaryRunner.run(
      ["train", "--corpus", corpus, "--encoder", encoder, "--cache-dir", cache, "--output", before] + settings
    )
    XCTAssertEqual(trained.status, 0, trained.standardError)
    XCTAssertEqual(try score(prompt, model: before)["decision"] as? String, "accept")

    // The service audited the prompt with its text; the operator labels the row adversarial.
    let database = directory.appendingPathComponent("audit.sqlite").path
    let log = try AuditLog(configuration: AuditLogConfiguration(path: database, storePromptText: true))
    let id = try log.appendAndWait(
      AuditRecord(promptSHA256: String(repeating: "0", count: 64), promptText: prompt, decision: "accept"))
    log.close()
    let label = try BinaryRunner.run([
      "audit", "label", database, String(id), "adversarial", "--note", "missed",
    ])
    XCTAssertEqual(label.status, 0, label.standardError)

    let retrained = try BinaryRunner.run(
      [
        "train", "--corpus", corpus, "--audit", database, "--audit-weight", "100", "--encoder", encoder,
        "--cache-dir", cache, "--output", after,
      ] + settings)
    XCTAssertEqual(retrained.status, 0, retrained.standardError)
    XCTAssertTrue(retrained.standardError.contains("1 labelled prompts"), retrained.standardError)
    let rescored = try score(prompt, model: after)
    XCTAssertEqual(rescored["decision"] as? String, "reject", "\(rescored)")

    let inspect = try BinaryRunner.run(["model", "inspect", after, "--json"])
    XCTAssertEqual(inspect.status, 0, inspect.standardError)
    XCTAssertTrue(inspect.output.contains("audit_labelled"), "the bundle records the audit data")
  }
}
