import Embeddings
import Foundation
import LinearAlgebra
import TestSupport
import XCTest

/// all-MiniLM-L6-v2 against `transformers`' `BertModel` (golden file from
/// tooling/golden/make_encoder_golden.py). Needs the real weights (`bash tooling/setup.sh`); skipped
/// without them locally, a failure under `CI=true`.
final class RealEncoderTests: XCTestCase {
  /// The tolerance on `last_hidden_state`.
  let tolerance: Float = 1e-4

  /// The shared encoder, loaded once for the whole class (90 MB).
  nonisolated(unsafe) private static var cached: TextEncoder?

  private func encoder() throws -> TextEncoder {
    if let cached = Self.cached { return cached }
    let store = EncoderStore()
    do {
      try store.verify()
    } catch {
      if ProcessInfo.processInfo.environment["CI"] == "true" {
        XCTFail("CI=true but the real encoder is unavailable: \(error)")
      }
      throw XCTSkip("real encoder weights not installed (\(error.message))")
    }
    let loaded = try TextEncoder(directory: store.directory)
    Self.cached = loaded
    return loaded
  }

  private struct GoldenCase: Decodable {
    let index: Int
    let kind: String
    let text: String?
    let tokens: Int
  }

  func testLastHiddenStateMatchesTransformersWithin1e4() throws {
    let encoder = try encoder()
    let golden = try SafetensorsFile(contentsOf: Fixtures.url("encoder/minilm-golden.safetensors"))
    let cases = try JSONDecoder().decode([GoldenCase].self, from: Data((golden.metadata["cases"] ?? "").utf8))
    XCTAssertGreaterThanOrEqual(cases.count, 20)
    var lengths: Set<Int> = []
    for testCase in cases {
      let i = testCase.index
      let ids = try golden.floats("ids.\(i)").map { Int($0) }
      XCTAssertEqual(ids.count, testCase.tokens)
      let rows = try golden.floats("rows.\(i)").map { Int($0) }
      let expectedRows = try golden.floats("hidden.\(i)")
      let summary = try golden.floats("summary.\(i)")

      let embedded: TokenEmbeddings
      if testCase.kind == "text", let text = testCase.text {
        // The whole path: tokenizer, window rule, packed model calls.
        embedded = try encoder.embed(text)
        XCTAssertEqual(embedded.ids, ids, "token ids of case \(i)")
      } else {
        embedded = try encoder.embed(windows: [[ids]])[0]
      }
      let hidden = embedded.hidden
      XCTAssertEqual(hidden.rows, ids.count)
      lengths.insert(ids.count)

      var worst: Float = 0
      for (k, row) in rows.enumerated() {
        let expected = expectedRows[(k * hidden.columns)..<((k + 1) * hidden.columns)]
        worst = max(worst, maxAbsoluteDifference(hidden.row(row), expected))
      }
      XCTAssertLessThanOrEqual(worst, tolerance, "case \(i) (\(ids.count) tokens): worst difference \(worst)")

      // Every row enters through its mean and L2 norm.
      for r in 0..<hidden.rows {
        let values = hidden.row(r)
        let mean = values.reduce(0, +) / Float(values.count)
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertEqual(mean, summary[2 * r], accuracy: tolerance, "case \(i) row \(r) mean")
        XCTAssertEqual(norm, summary[2 * r + 1], accuracy: 20 * tolerance, "case \(i) row \(r) norm")
      }
    }
    XCTAssertTrue(lengths.contains(1) && lengths.contains(512), "covers 1 to 512 tokens")
    XCTAssertTrue(lengths.contains { $0 > 512 }, "covers a prompt over one window")
  }

  func testBatchedPromptsEqualOneByOne() throws {
    let encoder = try encoder()
    let texts = ["hello world", "", String(repeating: "a long prompt ", count: 300), "ok"]
    let batched = try encoder.embed(texts)
    for (text, output) in zip(texts, batched) {
      let single = try encoder.embed(text)
      XCTAssertEqual(single.ids, output.ids)
      XCTAssertLessThanOrEqual(maxAbsoluteDifference(single.hidden.storage, output.hidden.storage), 1e-5)
    }
    XCTAssertEqual(batched[1].ids, [101, 102])
    XCTAssertEqual(batched[2].windowCount, 2)
  }
}
