import Foundation
import TestSupport
import XCTest

/// `curvalid cache list` and `curvalid cache prune` on fake cache trees (small files with entry
/// names) and on the tuned cache a real encoder-tuned training leaves.
final class CacheCommandTests: XCTestCase {
  private var root = URL(fileURLWithPath: "/nonexistent")

  override func setUpWithError() throws {
    root = try makeTemporaryDirectory(prefix: "curvalid-cache")
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: root)
  }

  /// The base cache of the fake trees.
  private var base: URL { root.appendingPathComponent("embeddings", isDirectory: true) }

  /// Writes entries of `sizes` bytes into the cache directory `name` under `root`, each under the
  /// two-hex folder of its digest, as `EmbeddingCache` lays them out.
  private func makeCache(_ name: String, sizes: [Int], temporary: Bool = false) throws {
    let directory = root.appendingPathComponent(name, isDirectory: true)
    for (index, size) in sizes.enumerated() {
      let digest = String(repeating: String(format: "%02x", (index + 16 * name.count) % 256), count: 32)
      let folder = directory.appendingPathComponent(String(digest.prefix(2)), isDirectory: true)
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      try Data(repeating: 7, count: size).write(to: folder.appendingPathComponent("\(digest)-w1.emb"))
    }
    if temporary {
      let folder = directory.appendingPathComponent("0f", isDirectory: true)
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      try Data(repeating: 1, count: 5).write(to: folder.appendingPathComponent(".\(UUID().uuidString).tmp"))
    }
  }

  /// A frozen cache (2 entries, 30 bytes), `layers1` (1 entry, 7 bytes), two tuned caches, and
  /// directories that only look related.
  private func makeTree() throws {
    try makeCache("embeddings", sizes: [10, 20])
    try makeCache("embeddings-layers1", sizes: [7])
    try makeCache("embeddings-tuned-0123456789abcdef", sizes: [3], temporary: true)
    try makeCache("embeddings-tuned-fedcba9876543210", sizes: [4, 4])
    try makeCache("embeddings-other", sizes: [1])
    try makeCache("embeddings-tuned-XYZ", sizes: [1])
    try makeCache("embeddings2", sizes: [1])
  }

  private func exists(_ name: String) -> Bool {
    FileManager.default.fileExists(atPath: root.appendingPathComponent(name).path)
  }

  func testListShowsEachCacheDirectoryOfTheBase() throws {
    try makeTree()
    let result = try BinaryRunner.run(["cache", "list", "--cache-dir", base.path])
    XCTAssertEqual(result.status, 0, result.standardError)
    let lines = result.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    XCTAssertEqual(lines.first, ["kind", "entries", "bytes", "last", "modified", "directory"])
    let rows = lines.dropFirst().dropLast()
    XCTAssertEqual(
      rows.map { Array($0.prefix(3)) },
      [
        ["frozen", "2", "30"], ["layers1", "1", "7"], ["tuned-0123456789abcdef", "1", "8"],
        ["tuned-fedcba9876543210", "2", "8"],
      ], result.output)
    XCTAssertEqual(rows.first?.last, base.path)
    XCTAssertTrue(rows.allSatisfy { $0[3].hasSuffix("Z") }, result.output)
    XCTAssertEqual(
      result.output.split(separator: "\n").last, "total: 4 directories, 6 entries, 53 bytes (53 B)")
    XCTAssertFalse(result.output.contains("other"), result.output)
    XCTAssertFalse(result.output.contains("XYZ"), result.output)
    XCTAssertFalse(result.output.contains("embeddings2"), result.output)
  }

  func testDryRunRemovesNothing() throws {
    try makeTree()
    let result = try BinaryRunner.run(["cache", "prune", "--cache-dir", base.path, "--all", "--dry-run"])
    XCTAssertEqual(result.status, 0, result.standardError)
    XCTAssertEqual(result.output.components(separatedBy: "would remove ").count - 1, 4, result.output)
    XCTAssertTrue(result.output.hasSuffix("would free 53 bytes (53 B) in 4 directories\n"), result.output)
    for name in [
      "embeddings", "embeddings-layers1", "embeddings-tuned-0123456789abcdef",
      "embeddings-tuned-fedcba9876543210",
    ] {
      XCTAssertTrue(exists(name), name)
    }
  }

  func testPruneRemovesOnlyTheChosenKinds() throws {
    try makeTree()
    let layers = try BinaryRunner.run(["cache", "prune", "--cache-dir", base.path, "--layers"])
    XCTAssertEqual(layers.status, 0, layers.standardError)
    XCTAssertTrue(layers.output.contains("removed layers1"), layers.output)
    XCTAssertTrue(layers.output.hasSuffix("freed 7 bytes (7 B) in 1 directory\n"), layers.output)
    XCTAssertFalse(exists("embeddings-layers1"))

    let tuned = try BinaryRunner.run(["cache", "prune", "--cache-dir", base.path, "--tuned"])
    XCTAssertEqual(tuned.status, 0, tuned.standardError)
    XCTAssertFalse(exists("embeddings-tuned-0123456789abcdef"))
    XCTAssertFalse(exists("embeddings-tuned-fedcba9876543210"))
    XCTAssertTrue(exists("embeddings"), "only --all removes the frozen cache")

    let all = try BinaryRunner.run(["cache", "prune", "--cache-dir", base.path, "--all"])
    XCTAssertEqual(all.status, 0, all.standardError)
    XCTAssertFalse(exists("embeddings"))
    for name in ["embeddings-other", "embeddings-tuned-XYZ", "embeddings2"] {
      XCTAssertTrue(exists(name), "\(name) is not a cache directory of the base")
    }
    let again = try BinaryRunner.run(["cache", "prune", "--cache-dir", base.path, "--all"])
    XCTAssertEqual(again.status, 1)
    XCTAssertTrue(again.standardError.contains("no embedding cache at"), again.standardError)
  }

  func testRefusesWhatIsNotAnEmbeddingCache() throws {
    try makeCache("embeddings", sizes: [10])
    try Data("keep me".utf8).write(to: base.appendingPathComponent("notes.txt"))
    for arguments in [["list"], ["prune", "--all"], ["prune", "--tuned"]] {
      let result = try BinaryRunner.run(["cache"] + arguments + ["--cache-dir", base.path])
      XCTAssertEqual(result.status, 1, "\(arguments): \(result.output)")
      XCTAssertTrue(
        result.standardError.contains("does not look like an embedding cache: unexpected notes.txt"),
        result.standardError)
    }
    XCTAssertTrue(exists("embeddings/notes.txt"))

    // A stray file inside a two-hex folder is refused too; a sibling is not a base.
    try FileManager.default.removeItem(at: base.appendingPathComponent("notes.txt"))
    try makeCache("embeddings-layers2", sizes: [1])
    let sibling = try BinaryRunner.run(
      ["cache", "prune", "--all", "--cache-dir", root.appendingPathComponent("embeddings-layers2").path])
    XCTAssertEqual(sibling.status, 1)
    XCTAssertTrue(sibling.standardError.contains("is a layers2 cache beside"), sibling.standardError)
    let folder = try XCTUnwrap(
      FileManager.default.contentsOfDirectory(atPath: base.path).first, "the entry's folder")
    try Data().write(to: base.appendingPathComponent(folder).appendingPathComponent("model.safetensors"))
    let stray = try BinaryRunner.run(["cache", "prune", "--all", "--cache-dir", base.path])
    XCTAssertEqual(stray.status, 1)
    XCTAssertTrue(stray.standardError.contains("unexpected \(folder)/model.safetensors"), stray.standardError)
    XCTAssertTrue(exists("embeddings-layers2"), "nothing is removed when the base is refused")

    // A sibling with unexpected contents is skipped with a warning and kept.
    let other = root.appendingPathComponent("other", isDirectory: true)
    try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(
      at: root.appendingPathComponent("other-tuned-0123456789abcdef/src"), withIntermediateDirectories: true)
    let skipped = try BinaryRunner.run(["cache", "prune", "--tuned", "--cache-dir", other.path])
    XCTAssertEqual(skipped.status, 0, skipped.standardError)
    XCTAssertTrue(skipped.standardError.contains("skipping"), skipped.standardError)
    XCTAssertEqual(skipped.output, "nothing to remove\n")
    XCTAssertTrue(exists("other-tuned-0123456789abcdef/src"))
  }

  /// A real encoder-tuned bundle: `--keep-model` keeps the tuned cache its training filled (the
  /// digest the provider names it by) and removes the other tuned caches.
  func testPruneTunedKeepsTheKeptBundlesCache() throws {
    let tiny = [
      "featureNetwork.length=16", "featureNetwork.epochs=40", "featureNetwork.batchSize=16",
      "featureNetwork.filters1=8", "featureNetwork.filters2=8", "featureNetwork.dense=16", "lidK=8",
      "classifier.hidden=32,16", "classifier.epochs=200", "classifier.batchSize=16", "classifier.patience=40",
      "classifier.dropout=0.1", "classifier.learningRate=0.01", "targetFalsePositiveRate=0.05",
      "encoderTuning.crop=16", "encoderTuning.batchSize=8",
    ].flatMap { ["--set", $0] }
    let bundle = root.appendingPathComponent("tuned.safetensors").path
    let trained = try BinaryRunner.run(
      [
        "train", "--corpus", Fixtures.url("detection/corpus.jsonl").path, "--encoder",
        Fixtures.url("encoder/tiny-bert").path, "--cache-dir", base.path, "--preset", "encoder-tuned",
        "--output", bundle,
      ] + tiny)
    XCTAssertEqual(trained.status, 0, trained.standardError)
    let made = try FileManager.default.contentsOfDirectory(atPath: root.path).filter {
      $0.hasPrefix("embeddings-tuned-")
    }
    XCTAssertEqual(made.count, 1, "\(made)")
    let own = try XCTUnwrap(made.first)
    try makeCache("embeddings-tuned-0123456789abcdef", sizes: [3])

    let pruned = try BinaryRunner.run(
      ["cache", "prune", "--cache-dir", base.path, "--tuned", "--keep-model", bundle])
    XCTAssertEqual(pruned.status, 0, pruned.standardError)
    XCTAssertTrue(pruned.output.contains("kept \(own.dropFirst("embeddings-".count))"), pruned.output)
    XCTAssertTrue(pruned.output.contains(bundle), pruned.output)
    XCTAssertTrue(pruned.output.contains("removed tuned-0123456789abcdef"), pruned.output)
    XCTAssertTrue(exists(own))
    XCTAssertFalse(exists("embeddings-tuned-0123456789abcdef"))
    XCTAssertTrue(exists("embeddings-layers1"), "--tuned leaves the layers cache")

    let missing = try BinaryRunner.run(
      ["cache", "prune", "--cache-dir", base.path, "--tuned", "--keep-model", bundle + ".missing"])
    XCTAssertEqual(missing.status, 1)
    XCTAssertTrue(exists(own), "a missing kept bundle stops the prune before anything is removed")
  }

  func testUsageErrorsExit64() throws {
    for arguments in [
      ["cache"], ["cache", "frob"], ["cache", "prune"], ["cache", "list", "--tuned"],
      ["cache", "list", "--keep-model", "x"], ["cache", "prune", "--layers", "--keep-model", "x"],
      ["cache", "list", "extra"], ["cache", "prune", "--frobnicate"],
    ] {
      let result = try BinaryRunner.run(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.standardError)")
      XCTAssertEqual(result.standardError.split(separator: "\n").count, 1, result.standardError)
    }
  }

  func testHelp() throws {
    let result = try BinaryRunner.run(["cache", "--help"])
    XCTAssertEqual(result.status, 0)
    XCTAssertTrue(result.output.hasPrefix("usage: curvalid cache list"), result.output)
    let top = try BinaryRunner.run(["--help"])
    XCTAssertTrue(top.output.contains("  cache "), top.output)
  }
}
