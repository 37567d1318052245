import Embeddings
import Foundation
import TestSupport
import XCTest

/// Locating the encoder's weights and refusing missing or altered files with a repair hint.
final class EncoderStoreTests: XCTestCase {
  func testDefaultLocationFollowsTheEnvironment() {
    XCTAssertEqual(
      EncoderStore(environment: ["CURVALID_ENCODER_DIR": "/x/enc", "CURVALID_CACHE_DIR": "/c"]).directory
        .path,
      "/x/enc")
    XCTAssertEqual(
      EncoderStore(environment: ["CURVALID_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/xdg"]).directory.path,
      "/c/encoders/all-minilm-l6-v2-0.1.0")
    XCTAssertEqual(
      EncoderStore(environment: ["XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"]).directory.path,
      "/xdg/curvalid/encoders/all-minilm-l6-v2-0.1.0")
    XCTAssertEqual(
      EncoderStore(environment: ["HOME": "/home/u"]).directory.path,
      "/home/u/.cache/curvalid/encoders/all-minilm-l6-v2-0.1.0")
  }

  func testMissingAndCorruptedFilesNameTheRepairCommand() throws {
    let directory = try makeTemporaryDirectory(prefix: "enc")
    defer { try? FileManager.default.removeItem(at: directory) }
    let store = EncoderStore(directory: directory)
    XCTAssertThrowsError(try store.verify()) { error in
      let error = error as? EmbeddingsError
      XCTAssertEqual(error?.code, .fileNotFound)
      XCTAssertTrue(error?.message.contains(EncoderStore.repairCommand) ?? false)
    }
    for name in EncoderStore.requiredFiles {
      try Data("not the weights".utf8).write(to: directory.appendingPathComponent(name))
    }
    XCTAssertThrowsError(try store.verify()) { error in
      let error = error as? EmbeddingsError
      XCTAssertEqual(error?.code, .invalidTensor)
      XCTAssertTrue(error?.message.contains("corrupted") ?? false)
      XCTAssertTrue(error?.message.contains(EncoderStore.repairCommand) ?? false)
      XCTAssertFalse(error?.message.contains("\n") ?? true)
    }
    // Without a pinned digest any content verifies, and the stamp is reused afterwards.
    let digest = try store.verify(expectedSHA256: nil)
    XCTAssertEqual(try store.verify(expectedSHA256: nil), digest)
    // A stale stamp for the pinned digest does not hide a changed file.
    let stamp = directory.appendingPathComponent(".verified")
    let fields = try String(contentsOf: stamp, encoding: .utf8).split(separator: " ")
    try "\(EncoderStore.weightsSHA256) \(fields[1]) 0\n".write(to: stamp, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try store.verify())
  }
}
