import Embeddings
import Foundation
import LinearAlgebra
import TestSupport
import XCTest

/// The encoder against golden `last_hidden_state` values from Hugging Face `transformers`
/// (made by tooling/golden/make_encoder_golden.py).
final class BertEncoderTests: XCTestCase {
  /// Golden tolerance from the issue: max absolute difference ≤ 1e-4.
  let tolerance: Float = 1e-4

  func testTinyRandomBertMatchesTransformers() throws {
    let directory = Fixtures.url("encoder/tiny-bert")
    let encoder = try BertEncoder(directory: directory)
    let golden = try SafetensorsFile(contentsOf: directory.appendingPathComponent("golden.safetensors"))
    var cases = 0
    var worst: Float = 0
    while golden.info("ids.\(cases)") != nil {
      let ids = try golden.floats("ids.\(cases)").map { Int($0) }
      let expected = try golden.floats("hidden.\(cases)")
      let actual = try encoder.encode(ids: ids)
      XCTAssertEqual(actual.rows, ids.count)
      XCTAssertEqual(actual.columns, encoder.configuration.hiddenSize)
      worst = max(worst, maxAbsoluteDifference(actual.storage, expected))
      cases += 1
    }
    XCTAssertGreaterThanOrEqual(cases, 5)
    XCTAssertLessThanOrEqual(worst, tolerance, "worst absolute difference \(worst)")
  }

  func testPackedBatchEqualsOneByOne() throws {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    var rng = SeededGenerator(seed: 5)
    let batch = [1, 9, 40, 2, 17].map { length in
      (0..<length).map { _ in Int.random(in: 0..<211, using: &rng) }
    }
    let packed = try encoder.encode(batch: batch)
    for (ids, output) in zip(batch, packed) {
      let single = try encoder.encode(ids: ids)
      XCTAssertLessThanOrEqual(maxAbsoluteDifference(single.storage, output.storage), 1e-5)
    }
  }

  func testRejectsEmptyOverLongAndOutOfVocabularySequences() throws {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    XCTAssertThrowsError(try encoder.encode(ids: []))
    XCTAssertThrowsError(try encoder.encode(ids: Array(repeating: 5, count: 41)))
    XCTAssertThrowsError(try encoder.encode(ids: [2, 211, 3]))
    XCTAssertThrowsError(try encoder.encode(ids: [2, -1, 3]))
  }

  func testMissingDirectoryGivesClearError() {
    XCTAssertThrowsError(try BertEncoder(directory: URL(fileURLWithPath: "/nonexistent/encoder"))) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .fileNotFound)
    }
  }
}
