import Embeddings
import Foundation
import LinearAlgebra
import TestSupport
import Tokenization
import XCTest

/// The window rule and batching on the tiny BERT fixture (40 positions, so 38 pieces per window).
final class TextEncoderTests: XCTestCase {
  /// A vocabulary matching the tiny model: specials at 0…4, then words `w5` … `w210`.
  private func tinyEncoder() throws -> TextEncoder {
    let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<211).map { "w\($0)" }
    let tokenizer = try WordPieceTokenizer(vocabulary: Vocabulary(tokens: tokens))
    return try TextEncoder(
      tokenizer: tokenizer, model: BertEncoder(directory: Fixtures.url("encoder/tiny-bert")))
  }

  func testWindowsCoverEveryPieceWithSpecialTokens() throws {
    let encoder = try tinyEncoder()
    XCTAssertEqual(encoder.piecesPerWindow, 38)
    XCTAssertEqual(encoder.windows(forPieces: []), [[2, 3]])
    XCTAssertEqual(encoder.windows(forPieces: Array(5..<43)).count, 1)
    let pieces = (0..<100).map { 5 + $0 % 200 }
    let windows = encoder.windows(forPieces: pieces)
    XCTAssertEqual(windows.map(\.count), [40, 40, 26])
    XCTAssertEqual(windows.flatMap { $0.dropFirst().dropLast() }, pieces)
    XCTAssertTrue(windows.allSatisfy { $0.first == 2 && $0.last == 3 })
  }

  func testLongPromptIsWindowsEncodedSeparatelyAndConcatenated() throws {
    let encoder = try tinyEncoder()
    let text = (0..<90).map { "w\(5 + ($0 * 7) % 200)" }.joined(separator: " ")
    let embedded = try encoder.embed(text)
    let windows = encoder.windows(for: text)
    XCTAssertEqual(embedded.windowCount, 3)
    XCTAssertEqual(embedded.ids, windows.flatMap { $0 })
    var row = 0
    for window in windows {
      let expected = try encoder.model.encode(ids: window)
      let actual = embedded.hidden.rows(row..<(row + window.count))
      XCTAssertLessThanOrEqual(maxAbsoluteDifference(actual.storage, expected.storage), 1e-5)
      row += window.count
    }
    XCTAssertEqual(row, embedded.tokenCount)
  }

  func testVocabularySizeMustMatchTheModel() throws {
    let tokenizer = try WordPieceTokenizer(
      vocabulary: Vocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    XCTAssertThrowsError(
      try TextEncoder(tokenizer: tokenizer, model: BertEncoder(directory: Fixtures.url("encoder/tiny-bert")))
    ) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .invalidConfiguration)
    }
  }
}
