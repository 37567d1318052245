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

  /// `meanAfterLayers` leaves the last rows exactly as they were and adds the mean of the rows
  /// after the bottom layers over all of a prompt's windows; `BertEncoder.lowerLayerMeans`
  /// recomputes the same mean from the ids alone.
  func testLowerLayerMeanIsTakenInTheSamePassAndRecomputedFromIds() throws {
    let encoder = try tinyEncoder()
    let long = (0..<90).map { "w\(5 + ($0 * 11) % 200)" }.joined(separator: " ")
    let texts = [long, "w7 w8 w9", ""]
    let windows = texts.map { encoder.windows(for: $0) }
    let plain = try encoder.embed(windows: windows)
    XCTAssertTrue(plain.allSatisfy { $0.lowerLayerMean == nil })
    for layerCount in 0...2 {
      let captured = try encoder.embed(windows: windows, meanAfterLayers: layerCount)
      let recomputed = try encoder.model.lowerLayerMeans(captured.map(\.ids), layerCount: layerCount)
      XCTAssertEqual(recomputed.shape.rows, 3)
      for (index, (with, without)) in zip(captured, plain).enumerated() {
        XCTAssertEqual(with.hidden, without.hidden, "the last rows do not change")
        // Independently: every window alone through the bottom layers, all rows averaged.
        var sums = [Float](repeating: 0, count: 32)
        for window in windows[index] {
          let state = try encoder.model.hiddenStates(batch: [window], layerCount: layerCount)[0]
          for row in 0..<state.rows {
            for j in 0..<32 { sums[j] += state[row, j] }
          }
        }
        let expected = sums.map { $0 / Float(with.ids.count) }
        let mean = try XCTUnwrap(with.lowerLayerMean)
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(mean, expected), 1e-5, "layers \(layerCount)")
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(recomputed.row(index), expected), 1e-5)
        if layerCount == 2 {
          // After every layer it is the mean of the last rows.
          let last = with.hidden.columnSums().map { $0 / Float(with.hidden.rows) }
          XCTAssertLessThanOrEqual(maxAbsoluteDifference(mean, last), 1e-5)
        }
      }
    }
    XCTAssertEqual(plain[0].windowCount, 3, "the long prompt spans three windows")
    let empty = try encoder.model.lowerLayerMeans([[]], layerCount: 1)
    XCTAssertEqual(empty.storage, Array(repeating: 0, count: 32))
    XCTAssertThrowsError(try encoder.embed(windows: windows, meanAfterLayers: 3))
    XCTAssertThrowsError(try encoder.model.lowerLayerMeans([[2, 5, 3]], layerCount: -1))
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
