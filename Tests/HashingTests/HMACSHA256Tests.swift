import Hashing
import XCTest

/// RFC 4231 test cases 1–4, 6 and 7 (HMAC-SHA-256); case 5 truncates the output and is left out.
final class HMACSHA256Tests: XCTestCase {
  private func code(_ key: [UInt8], _ message: [UInt8]) -> String {
    SHA256.hex(HMACSHA256.authenticationCode(for: message, key: key))
  }

  func testRFC4231Vectors() {
    XCTAssertEqual(
      code([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8)),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    XCTAssertEqual(
      code(Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    XCTAssertEqual(
      code([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50)),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")
    XCTAssertEqual(
      code(Array(1...25), [UInt8](repeating: 0xcd, count: 50)),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b")
    // Keys longer than the block are hashed first.
    let longKey = [UInt8](repeating: 0xaa, count: 131)
    XCTAssertEqual(
      code(longKey, Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    XCTAssertEqual(
      code(
        longKey,
        Array(
          ("This is a test using a larger than block-size key and a larger than block-size data. "
            + "The key needs to be hashed before being used by the HMAC algorithm.").utf8)),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")
  }

  func testIncrementalUpdatesGiveTheOneShotCode() {
    let key = Array("a key".utf8)
    let message = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
    var code = HMACSHA256(key: key)
    for chunk in stride(from: 0, to: message.count, by: 37) {
      code.update(Array(message[chunk..<min(chunk + 37, message.count)]))
    }
    XCTAssertEqual(code.finalize(), HMACSHA256.authenticationCode(for: message, key: key))
    // A different key gives a different code.
    XCTAssertNotEqual(
      HMACSHA256.authenticationCode(for: message, key: Array("b key".utf8)),
      HMACSHA256.authenticationCode(for: message, key: key))
  }
}
