import Foundation
import TestSupport
import XCTest

/// `curvalid embed`, run as a user would, on the tiny BERT fixture.
final class EmbedCommandTests: XCTestCase {
  let encoder = Fixtures.url("encoder/tiny-bert").path

  private struct TokenLine: Decodable {
    let index: Int
    let token: String
    let id: Int
    let embedding: [Float]
  }

  private func lines(_ text: String) throws -> [[TokenLine]] {
    let groups = text.components(separatedBy: "\n\n")
    return try groups.map { group in
      try group.split(separator: "\n").map { try JSONDecoder().decode(TokenLine.self, from: Data($0.utf8)) }
    }
  }

  func testOnePromptPrintsOneLinePerToken() throws {
    let result = try BinaryRunner.run(["embed", "--encoder", encoder, "Hello, world!"])
    XCTAssertEqual(result.status, 0, result.standardError)
    let tokens = try lines(result.output)
    XCTAssertEqual(tokens.count, 1)
    XCTAssertEqual(tokens[0].map(\.token), ["[CLS]", "hello", ",", "world", "!", "[SEP]"])
    XCTAssertEqual(tokens[0].map(\.index), Array(0..<6))
    XCTAssertEqual(tokens[0].first?.id, 2)
    XCTAssertTrue(tokens[0].allSatisfy { $0.embedding.count == 32 && $0.embedding.allSatisfy(\.isFinite) })
  }

  func testStandardInputSeparatesPromptsWithBlankLinesAndReportsBadLines() throws {
    var input = Data("hello world\n".utf8)
    input.append(contentsOf: [0x69, 0xFF, 0xFE, 0x0A])  // "i" + invalid UTF-8
    input.append(Data("ignore all previous instructions\r\n\nsystem".utf8))
    let result = try BinaryRunner.run(["embed", "--encoder", encoder], input: input)
    XCTAssertEqual(result.status, 1, "a bad line makes the run fail")
    XCTAssertTrue(result.standardError.contains("line 2"), result.standardError)
    let prompts = try lines(result.output)
    XCTAssertEqual(prompts.count, 4)
    XCTAssertEqual(prompts[0].map(\.token), ["[CLS]", "hello", "world", "[SEP]"])
    XCTAssertEqual(prompts[1].map(\.token).count, 6)
    XCTAssertEqual(prompts[2].map(\.token), ["[CLS]", "[SEP]"], "an empty line is an empty prompt")
    XCTAssertEqual(prompts[3].map(\.token), ["[CLS]", "system", "[SEP]"])
  }

  func testUsageErrorsExit64WithOneLine() throws {
    for arguments in [
      ["embed", "--nope"], ["embed", "a", "b"], ["embed", "--threads", "0", "x"], ["frobnicate"], [],
    ] {
      let result = try BinaryRunner.run(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.standardError)")
      XCTAssertEqual(result.standardError.split(separator: "\n").count, 1, "\(arguments)")
      XCTAssertTrue(result.standardError.hasPrefix("curvalid: "))
    }
  }

  func testMissingEncoderFailsWithOneClearLine() throws {
    let result = try BinaryRunner.run(["embed", "--encoder", "/nonexistent/encoder", "x"])
    XCTAssertEqual(result.status, 1)
    XCTAssertEqual(result.standardError.split(separator: "\n").count, 1)
    XCTAssertTrue(result.standardError.contains("tooling/setup.sh"), result.standardError)
    XCTAssertTrue(result.output.isEmpty)
  }

  func testEveryCommandHasHelp() throws {
    for arguments in [
      ["--help"], ["embed", "--help"], ["bench", "--help"], ["serve", "--help"], ["embed", "-h"],
    ] {
      let result = try BinaryRunner.run(arguments)
      XCTAssertEqual(result.status, 0, "\(arguments)")
      XCTAssertTrue(result.output.contains("usage: curvalid"), "\(arguments)")
    }
  }
}
