import Detection
import LinearAlgebra
import XCTest

/// The embedding-pooling blocks on hand-made token rows.
final class FeatureBlockTests: XCTestCase {
  let context = FeatureBlockContext(configuration: DetectorConfiguration(features: []), hiddenSize: 2)

  /// A prompt of `rows` rows `[r, −r]` (r = 0, 1, …).
  func prompt(rows: Int) -> PromptEmbedding {
    PromptEmbedding(
      ids: Array(repeating: 1, count: rows),
      hidden: Matrix(rows: rows, columns: 2, storage: (0..<rows).flatMap { [Float($0), -Float($0)] }),
      totalTokens: rows)
  }

  func testTailEmbeddingAveragesTheLastRowsOrAllOfAShortPrompt() {
    let block = TailEmbeddingBlock(context: context)
    XCTAssertEqual(block.width, 2)
    let tail = TailEmbeddingBlock.tokens
    let long = tail + 10
    let rows = block.extract(
      FeatureBatch(embeddings: [prompt(rows: long), prompt(rows: 5), prompt(rows: 0)], network: nil))
    XCTAssertEqual(rows.rows, 3)
    // Rows 10 … long − 1: mean (10 + long − 1) / 2.
    let expected = Float(10 + long - 1) / 2
    XCTAssertEqual(rows.storage[0], expected, accuracy: 1e-4)
    XCTAssertEqual(rows.storage[1], -expected, accuracy: 1e-4)
    // Five rows: all of them, as `mean_embedding`.
    let mean = MeanEmbeddingBlock(context: context).extract(
      FeatureBatch(embeddings: [prompt(rows: 5)], network: nil))
    XCTAssertEqual(Array(rows.storage[2..<4]), mean.storage)
    XCTAssertEqual(rows.storage[2], 2, accuracy: 1e-6)
    // No rows: zeros.
    XCTAssertEqual(Array(rows.storage[4..<6]), [0, 0])
  }
}
