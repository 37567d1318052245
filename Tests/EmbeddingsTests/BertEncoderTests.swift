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

  /// Stopping after `k` layers and continuing from there is the full pass, for every `k`.
  func testHiddenStatesThenContinueEncodingIsTheFullPass() throws {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    var rng = SeededGenerator(seed: 8)
    let batch = [3, 12, 30].map { length in (0..<length).map { _ in Int.random(in: 0..<211, using: &rng) } }
    let full = try encoder.encode(batch: batch)
    for k in 0...encoder.layers.count {
      let states = try encoder.hiddenStates(batch: batch, layerCount: k)
      XCTAssertEqual(states.map(\.rows), batch.map(\.count))
      let finished = try encoder.continueEncoding(states, fromLayer: k)
      for (a, b) in zip(full, finished) {
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(a.storage, b.storage), 1e-5, "layer \(k)")
      }
    }
    XCTAssertThrowsError(try encoder.hiddenStates(batch: batch, layerCount: encoder.layers.count + 1))
    XCTAssertThrowsError(try encoder.continueEncoding([Matrix(rows: 2, columns: 3)], fromLayer: 1))
  }

  /// Replacing the top layer with itself changes nothing; with other weights it changes only what
  /// the top layer computes.
  func testReplacingTopLayers() throws {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    let ids = [2, 17, 40, 99, 3]
    let same = try encoder.replacingTopLayers(with: [encoder.layers[encoder.layers.count - 1]])
    XCTAssertEqual(try same.encode(ids: ids).storage, try encoder.encode(ids: ids).storage)
    var changed = encoder.layers[encoder.layers.count - 1]
    changed.outputNormBeta = changed.outputNormBeta.map { $0 + 1 }
    let shifted = try encoder.replacingTopLayers(with: [changed]).encode(ids: ids)
    let original = try encoder.encode(ids: ids)
    XCTAssertLessThanOrEqual(
      maxAbsoluteDifference(shifted.storage, original.storage.map { $0 + 1 }), 1e-5)
    var broken = changed
    broken.qkvBias.removeLast()
    XCTAssertThrowsError(try encoder.replacingTopLayers(with: [broken]))
    XCTAssertThrowsError(try encoder.replacingTopLayers(with: Array(repeating: changed, count: 9)))
  }

  func testRejectsEmptyOverLongAndOutOfVocabularySequences() throws {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    XCTAssertThrowsError(try encoder.encode(ids: []))
    XCTAssertThrowsError(try encoder.encode(ids: Array(repeating: 5, count: 41)))
    XCTAssertThrowsError(try encoder.encode(ids: [2, 211, 3]))
    XCTAssertThrowsError(try encoder.encode(ids: [2, -1, 3]))
  }

  /// `lexicalRows` against the layer norm of `word + tokenType[0]` computed here in Double from the
  /// weights file; a token's row depends neither on its position nor on its neighbours.
  func testLexicalRowsAreTheContextFreeInputEmbedding() throws {
    let directory = Fixtures.url("encoder/tiny-bert")
    let encoder = try BertEncoder(directory: directory)
    let weights = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
    let prefix = weights.info("embeddings.word_embeddings.weight") == nil ? "bert." : ""
    let words = try weights.floats(prefix + "embeddings.word_embeddings.weight")
    let types = try weights.floats(prefix + "embeddings.token_type_embeddings.weight")
    let gamma = try weights.floats(prefix + "embeddings.LayerNorm.weight")
    let beta = try weights.floats(prefix + "embeddings.LayerNorm.bias")
    let h = encoder.configuration.hiddenSize
    let ids = [2, 17, 5, 210, 17]
    let rows = try encoder.lexicalRows(ids: ids)
    XCTAssertEqual(rows.rows, ids.count)
    XCTAssertEqual(rows.columns, h)
    for (row, id) in ids.enumerated() {
      let x = (0..<h).map { Double(words[id * h + $0]) + Double(types[$0]) }
      let mean = x.reduce(0, +) / Double(h)
      let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(h)
      for j in 0..<h {
        let expected =
          (x[j] - mean) / (variance + Double(encoder.configuration.layerNormEpsilon)).squareRoot()
          * Double(gamma[j]) + Double(beta[j])
        XCTAssertEqual(Double(rows.storage[row * h + j]), expected, accuracy: 1e-5)
      }
    }
    // Token 17 at positions 1 and 4, and alone: the same row.
    let alone = try encoder.lexicalRows(ids: [17])
    XCTAssertEqual(Array(rows.storage[h..<(2 * h)]), Array(rows.storage[(4 * h)..<(5 * h)]))
    XCTAssertEqual(alone.storage, Array(rows.storage[h..<(2 * h)]))
    XCTAssertEqual(try encoder.lexicalRows(ids: []).rows, 0)
    XCTAssertThrowsError(try encoder.lexicalRows(ids: [2, 211])) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .invalidInput)
    }
  }

  func testMissingDirectoryGivesClearError() {
    XCTAssertThrowsError(try BertEncoder(directory: URL(fileURLWithPath: "/nonexistent/encoder"))) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .fileNotFound)
    }
  }
}
