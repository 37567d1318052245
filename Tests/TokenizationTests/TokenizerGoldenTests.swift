import Foundation
import TestSupport
import Tokenization
import XCTest

/// Compares the tokenizer with ids recorded from Hugging Face by
/// `tooling/golden/make_tokenizer_golden.py`.
final class TokenizerGoldenTests: XCTestCase {
  private struct GoldenCase: Decodable {
    var text: String?
    var ids: [Int]?
    var bytesHex: String?
    var error: String?

    enum CodingKeys: String, CodingKey {
      case text, ids
      case bytesHex = "bytes_hex"
      case error
    }
  }

  private func loadTokenizer() throws -> WordPieceTokenizer {
    try WordPieceTokenizer(vocabulary: Vocabulary(contentsOf: Fixtures.url("tokenizer/vocab.txt")))
  }

  private func loadCases() throws -> [GoldenCase] {
    let data = try Data(contentsOf: Fixtures.url("tokenizer/golden.json"))
    return try JSONDecoder().decode([GoldenCase].self, from: data)
  }

  private static func bytes(fromHex hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    for index in stride(from: 0, to: digits.count, by: 2) {
      guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16)
      else { return nil }
      bytes.append(byte)
    }
    return bytes
  }

  func testGoldenCasesMatchHuggingFace() throws {
    let tokenizer = try loadTokenizer()
    let cases = try loadCases()
    XCTAssertGreaterThanOrEqual(cases.count, 300)
    var mismatches: [String] = []
    var textCases = 0
    for golden in cases {
      if let text = golden.text, let expected = golden.ids {
        textCases += 1
        let actual = tokenizer.encode(text)
        if actual != expected {
          let first = zip(actual, expected).prefix { $0 == $1 }.count
          let window = max(0, first - 5)
          mismatches.append(
            "text \(text.prefix(120).debugDescription) (\(text.unicodeScalars.count) scalars)\n"
              + "  first difference at id index \(first)\n"
              + "  expected \(expected.dropFirst(window).prefix(20))\n"
              + "  actual   \(actual.dropFirst(window).prefix(20))")
        }
        let fromBytes = try tokenizer.pieceIDs(forUTF8: Array(text.utf8))
        XCTAssertEqual(fromBytes, Array(actual.dropFirst().dropLast()), "bytes path differs")
      } else if let hex = golden.bytesHex {
        let bytes = try XCTUnwrap(Self.bytes(fromHex: hex), "bad hex \(hex)")
        XCTAssertEqual(golden.error, "invalidUTF8")
        do {
          _ = try tokenizer.pieceIDs(forUTF8: bytes)
          XCTFail("\(hex) should be rejected as invalid UTF-8")
        } catch {
          XCTAssertEqual(error.code, .invalidUTF8, "\(hex): \(error)")
        }
      } else {
        XCTFail("golden case without text or bytes")
      }
    }
    XCTAssertGreaterThan(textCases, 300)
    XCTAssertTrue(
      mismatches.isEmpty,
      "\(mismatches.count) mismatches; first:\n" + mismatches.prefix(5).joined(separator: "\n"))
  }

  func testLongTextIsFast() throws {
    let tokenizer = try loadTokenizer()
    let cases = try loadCases()
    let longest = try XCTUnwrap(cases.compactMap(\.text).max { $0.count < $1.count })
    XCTAssertGreaterThanOrEqual(longest.split(separator: " ").count, 19_000)
    let clock = ContinuousClock()
    var ids: [Int] = []
    let elapsed = clock.measure { ids = tokenizer.encode(longest) }
    XCTAssertGreaterThan(ids.count, 20_000)
    print("tokenized \(longest.unicodeScalars.count) scalars into \(ids.count) ids in \(elapsed)")
  }
}
