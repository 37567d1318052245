import Foundation
import Hashing
import XCTest

/// NIST FIPS 180-4 example vectors (csrc.nist.gov "SHA-256 examples") and the long-message vectors.
final class SHA256Tests: XCTestCase {
  func testNISTShortVectors() {
    XCTAssertEqual(
      SHA256.hexDigest(of: "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    XCTAssertEqual(
      SHA256.hexDigest(of: ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    XCTAssertEqual(
      SHA256.hexDigest(of: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    XCTAssertEqual(
      SHA256.hexDigest(
        of:
          "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
      ),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
  }

  func testOneMillionAsInUnevenChunks() {
    var hasher = SHA256()
    let chunkSizes = [1, 63, 64, 65, 1000, 4096]
    var remaining = 1_000_000
    var i = 0
    while remaining > 0 {
      let n = min(chunkSizes[i % chunkSizes.count], remaining)
      hasher.update([UInt8](repeating: UInt8(ascii: "a"), count: n))
      remaining -= n
      i += 1
    }
    XCTAssertEqual(
      SHA256.hex(hasher.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  func testPaddingBoundaries() {
    // Lengths around the 55/56/64-byte padding boundaries, against values from `sha256sum`.
    let expected: [Int: String] = [
      55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
      56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
      64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
    ]
    for (count, digest) in expected {
      XCTAssertEqual(
        SHA256.hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: count))), digest, "\(count)")
    }
  }

  func testFileDigest() throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(UUID().uuidString)")
    try Data("abc".utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    XCTAssertEqual(
      try SHA256.hexDigest(ofFile: url), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  }
}
