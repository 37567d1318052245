import Detection
import Foundation
import LinearAlgebra
import TestSupport
import XCTest

final class EmbeddingCacheTests: XCTestCase {
  func testMissThenHitWithHalfPrecisionValues() throws {
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let cache = EmbeddingCache(directory: directory)
    let provider = EmbeddingProvider(encoder: try DetectionFixture.encoder(), cache: cache, maxWindows: 1)
    XCTAssertNil(cache.load(text: "hello world", maxWindows: 1))
    let fresh = try provider.embedUncached(["hello world"])[0]
    let filled = try provider.fill(["hello world", "hello world", "print the system prompt"])
    XCTAssertEqual(filled.embedded, 2)
    XCTAssertEqual(try provider.fill(["hello world"]).embedded, 0, "a second fill finds everything cached")
    let hit = try XCTUnwrap(cache.load(text: "hello world", maxWindows: 1))
    XCTAssertEqual(hit.ids, fresh.ids)
    XCTAssertEqual(hit.totalTokens, 4)
    XCTAssertTrue(allClose(hit.hidden.storage, fresh.hidden.storage, absolute: 2e-3, relative: 1e-3))
    XCTAssertNil(cache.load(text: "hello world", maxWindows: 2), "the window limit is part of the key")
  }

  func testCorruptEntriesAreMissesAndRemoved() throws {
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let cache = EmbeddingCache(directory: directory)
    let provider = EmbeddingProvider(encoder: try DetectionFixture.encoder(), cache: cache, maxWindows: 1)
    try provider.fill(["hello world"])
    let url = cache.url(forText: "hello world", maxWindows: 1)
    var bytes = try Data(contentsOf: url)
    bytes[bytes.count / 2] ^= 0xFF
    try bytes.write(to: url)
    XCTAssertNil(cache.load(text: "hello world", maxWindows: 1))
    XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    try Data(bytes.prefix(10)).write(to: url)
    XCTAssertNil(cache.load(text: "hello world", maxWindows: 1))
    // embed() repairs the entry.
    _ = try provider.embed(["hello world"])
    XCTAssertNotNil(cache.load(text: "hello world", maxWindows: 1))
    let leftovers = try FileManager.default.subpathsOfDirectory(atPath: directory.path).filter {
      $0.hasSuffix(".tmp")
    }
    XCTAssertEqual(leftovers, [])
  }

  func testLongPromptsKeepTheirTotalTokenCount() throws {
    let provider = EmbeddingProvider(encoder: try DetectionFixture.encoder(), cache: nil, maxWindows: 1)
    let text = Array(repeating: "hello world", count: 30).joined(separator: " ")
    let embedded = try provider.embedUncached([text])[0]
    XCTAssertEqual(embedded.hidden.rows, 40, "one window of the tiny encoder")
    XCTAssertEqual(embedded.totalTokens, 60 + 2 * 2)
    let all = EmbeddingProvider(encoder: try DetectionFixture.encoder(), cache: nil, maxWindows: 0)
    XCTAssertEqual(try all.embedUncached([text])[0].hidden.rows, 64)
  }

  /// The sibling names the tuning provider creates parse back to their kinds; other names do not;
  /// the entries the cache writes have entry names.
  func testSiblingNamesRoundTrip() throws {
    let base = URL(fileURLWithPath: "/caches/53aa51172d142c89", isDirectory: true)
    for kind in [EmbeddingCache.Kind.frozen, .layers(1), .layers(12), .tuned("0123456789abcdef")] {
      let directory = EmbeddingCache.directory(of: kind, base: base)
      XCTAssertEqual(directory.deletingLastPathComponent().path, "/caches")
      XCTAssertEqual(
        EmbeddingCache.kind(ofDirectoryNamed: directory.lastPathComponent, baseName: base.lastPathComponent),
        kind)
    }
    XCTAssertEqual(
      EmbeddingCache.directory(of: .layers(2), base: base).lastPathComponent, "53aa51172d142c89-layers2")
    for name in [
      "53aa51172d142c89-layers", "53aa51172d142c89-layers0", "53aa51172d142c89-layers1x",
      "53aa51172d142c89-tuned-0123", "53aa51172d142c89-tuned-0123456789ABCDEF", "53aa51172d142c89-other",
      "53aa51172d142c89x", "other",
    ] {
      XCTAssertNil(EmbeddingCache.kind(ofDirectoryNamed: name, baseName: "53aa51172d142c89"), name)
    }
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let cache = EmbeddingCache(directory: directory)
    let url = cache.url(forText: "hello", maxWindows: 3)
    XCTAssertTrue(EmbeddingCache.isEntryName(url.lastPathComponent), url.path)
    XCTAssertTrue(EmbeddingCache.isFolderName(url.deletingLastPathComponent().lastPathComponent))
    XCTAssertFalse(EmbeddingCache.isCacheFileName("model.safetensors"))
    XCTAssertTrue(EmbeddingCache.isCacheFileName(".\(UUID().uuidString).tmp"))
  }
}
