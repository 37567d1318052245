import Detection
import Embeddings
import Foundation

/// `curvalid cache list|prune`: what the on-disk embedding caches hold, and removing the ones no
/// longer needed.
///
/// A cache is a base directory of the frozen encoder's rows (`train --cache-dir`, by default
/// `<cache root>/embeddings/<encoder digest16>/`) and the directories created beside it:
/// `<base>-layers<k>` (frozen states of the bottom k layers, read when fine-tuning) and
/// `<base>-tuned-<digest16>` (rows of one fine-tuned encoder). Only directories with those names
/// whose contents are cache entries are ever listed or removed.
enum CacheCommand {
  static let help = """
    usage: curvalid cache list [--cache-dir DIR] [--encoder DIR]
           curvalid cache prune (--tuned | --layers | --all) [--keep-model BUNDLE…] [--dry-run]
                                [--cache-dir DIR] [--encoder DIR]

    list    prints each cache directory of the base DIR: its kind (frozen, layers<k> for the frozen
            states fine-tuning reads, tuned-<digest> for the rows of one fine-tuned encoder), the
            number of entries, the bytes and the last modification.
    prune   removes the chosen directories beside DIR and prints each one removed and the bytes
            freed. Nothing else is touched: a DIR that does not look like an embedding cache is
            refused, and a sibling with unexpected contents is skipped with a warning.

    options:
      --cache-dir DIR      the base (frozen) cache (default: the one `train` uses, under
                           $CURVALID_CACHE_DIR, else $XDG_CACHE_HOME/curvalid or ~/.cache/curvalid)
      --encoder DIR        the encoder whose default cache to use (hashes its weights)
      --tuned              prune: remove the tuned-<digest> directories
      --keep-model BUNDLE  prune: keep the tuned directory of this bundle's fine-tuned layers
                           (repeatable; the directory `evaluate` fills for it)
      --layers             prune: remove the layers<k> directories
      --all                prune: remove the tuned and layers directories and the frozen cache
      --dry-run            prune: print what would be removed; remove nothing
      -h, --help           show this help

    """

  /// One cache directory of the base, with the totals of its contents.
  struct Directory {
    /// Where it is.
    let url: URL
    /// What it holds.
    let kind: EmbeddingCache.Kind
    /// The number of entries (`.emb` files).
    let entries: Int
    /// The bytes of its files.
    let bytes: Int
    /// The newest modification of the directory, its folders and files.
    let modified: Date?
  }

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    var remaining = raw
    let keptModels = try TrainCommand.extract("keep-model", from: &remaining)
    let arguments = try Arguments(
      remaining, options: ["cache-dir", "encoder"], flags: ["tuned", "layers", "all", "dry-run"])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard let action = arguments.positional.first else {
      throw .usage("cache needs an action: list or prune (see --help)")
    }
    guard arguments.positional.count == 1 else {
      throw .usage("cache \(action) takes no operands, got '\(arguments.positional[1])'")
    }
    let pruneFlags = ["tuned", "layers", "all", "dry-run"].filter(arguments.flag)
    switch action {
    case "list":
      if let flag = pruneFlags.first { throw .usage("cache list takes no --\(flag)") }
      guard keptModels.isEmpty else { throw .usage("cache list takes no --keep-model") }
      return try list(base: try base(arguments))
    case "prune":
      let all = arguments.flag("all")
      let tuned = all || arguments.flag("tuned")
      let layers = all || arguments.flag("layers")
      guard tuned || layers else { throw .usage("cache prune needs --tuned, --layers or --all") }
      guard tuned || keptModels.isEmpty else {
        throw .usage("--keep-model applies only with --tuned or --all")
      }
      return try prune(
        base: try base(arguments), tuned: tuned, layers: layers, frozen: all, keeping: keptModels,
        dryRun: arguments.flag("dry-run"))
    default:
      throw .usage("unknown cache action '\(action)' (list or prune)")
    }
  }

  /// The base cache: `--cache-dir`, else the default directory of `--encoder`'s weights or of the
  /// pinned default encoder (as `TrainingEnvironment` resolves it).
  private static func base(_ arguments: Arguments) throws(CommandError) -> URL {
    if let path = arguments.value("cache-dir") {
      guard !path.isEmpty else { throw .usage("--cache-dir needs a directory") }
      return URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }
    guard let encoder = arguments.value("encoder") else {
      return EmbeddingCache.defaultDirectory(encoderDigest: EncoderStore.weightsSHA256)
    }
    do {
      let store = EncoderStore(directory: URL(fileURLWithPath: encoder, isDirectory: true))
      return EmbeddingCache.defaultDirectory(encoderDigest: try store.verify(expectedSHA256: nil))
    } catch {
      throw .failure(error.message)
    }
  }

  // MARK: list

  private static func list(base: URL) throws(CommandError) -> Int32 {
    let directories = try scan(base: base)
    var rows = [["kind", "entries", "bytes", "last modified", "directory"]]
    for directory in directories {
      rows.append([
        directory.kind.description, "\(directory.entries)", "\(directory.bytes)",
        directory.modified.map(timestamp) ?? "-", directory.url.path,
      ])
    }
    let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
    var text = ""
    for row in rows {
      text +=
        row.enumerated().map { column, cell in
          switch column {
          case 0, 3: cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
          case 1, 2: String(repeating: " ", count: widths[column] - cell.count) + cell
          default: cell
          }
        }.joined(separator: "  ") + "\n"
    }
    let entries = directories.reduce(0) { $0 + $1.entries }
    let bytes = directories.reduce(0) { $0 + $1.bytes }
    text +=
      "total: \(directories.count) director\(directories.count == 1 ? "y" : "ies"), \(entries) entries, "
      + "\(bytes) bytes (\(humanBytes(bytes)))\n"
    let output = OutputWriter()
    try output.write(text)
    try output.flush()
    return 0
  }

  // MARK: prune

  private static func prune(
    base: URL, tuned: Bool, layers: Bool, frozen: Bool, keeping models: [String], dryRun: Bool
  ) throws(CommandError) -> Int32 {
    var kept: [String: [String]] = [:]
    for path in models {
      guard FileManager.default.fileExists(atPath: path) else {
        throw .failure("model bundle \(path) not found")
      }
      let model: ScoringModel
      do {
        model = try ModelBundle.read(from: URL(fileURLWithPath: path), encoderSHA256: nil).model
      } catch {
        throw .failure(error.message)
      }
      guard !model.tunedLayers.isEmpty else {
        printError("curvalid: \(path) has no fine-tuned encoder layers: it keeps no tuned directory")
        continue
      }
      let digest = EmbeddingCache.tunedDigest(of: model.tunedLayers, hiddenSize: model.hiddenSize)
      kept[digest, default: []].append(path)
    }
    let directories = try scan(base: base)
    let output = OutputWriter()
    var freed = 0
    var removed = 0
    for directory in directories {
      let chosen: Bool
      switch directory.kind {
      case .frozen: chosen = frozen
      case .layers: chosen = layers
      case .tuned(let digest):
        if tuned, let bundles = kept[digest] {
          try output.write(
            "kept \(directory.kind)  \(directory.url.path)  (\(bundles.joined(separator: ", ")))\n")
          continue
        }
        chosen = tuned
      }
      guard chosen else { continue }
      let summary =
        "\(directory.kind)  \(directory.url.path)  (\(directory.entries) entries, \(directory.bytes) bytes)\n"
      if dryRun {
        try output.write("would remove " + summary)
      } else {
        do {
          try FileManager.default.removeItem(at: directory.url)
        } catch {
          try output.flush()
          throw .failure(
            "cannot remove \(directory.url.path): \(error.localizedDescription) (freed \(freed) bytes "
              + "before it)")
        }
        try output.write("removed " + summary)
      }
      freed += directory.bytes
      removed += 1
    }
    if removed == 0 {
      try output.write("nothing to remove\n")
    } else {
      try output.write(
        (dryRun ? "would free" : "freed") + " \(freed) bytes (\(humanBytes(freed))) in \(removed) "
          + "director\(removed == 1 ? "y" : "ies")\n")
    }
    try output.flush()
    return 0
  }

  // MARK: scanning

  /// The cache directories of `base` (itself, if present, then its siblings by kind), each checked
  /// to hold nothing but cache folders and entries.
  ///
  /// - Throws: `CommandError.failure` when `base` names a sibling, is not a real directory or holds
  ///   anything else, or when neither it nor any sibling exists.
  static func scan(base: URL) throws(CommandError) -> [Directory] {
    let name = base.lastPathComponent
    let parent = base.deletingLastPathComponent()
    for index in name.indices where name[index] == "-" {
      if let kind = EmbeddingCache.Kind.sibling(name: name, base: String(name[..<index])) {
        throw .failure(
          "\(base.path) is a \(kind) cache beside \(parent.appendingPathComponent(String(name[..<index])).path):"
            + " pass that base directory as --cache-dir")
      }
    }
    var found: [(URL, EmbeddingCache.Kind)] = []
    if let type = fileType(base) {
      guard type == .typeDirectory else {
        throw .failure("\(base.path) is not a directory (a symbolic link or a file): not an embedding cache")
      }
      found.append((base, .frozen))
    }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
    for sibling in names.sorted() where sibling != name {
      guard let kind = EmbeddingCache.Kind.sibling(name: sibling, base: name) else { continue }
      found.append((parent.appendingPathComponent(sibling, isDirectory: true), kind))
    }
    guard !found.isEmpty else { throw .failure("no embedding cache at \(base.path)") }
    var directories: [Directory] = []
    for (url, kind) in found {
      switch survey(url, kind: kind) {
      case .success(let directory):
        directories.append(directory)
      case .failure(let problem):
        guard kind != .frozen else {
          throw .failure("\(url.path) does not look like an embedding cache: \(problem.reason)")
        }
        printError("curvalid: skipping \(url.path): not an embedding cache (\(problem.reason))")
      }
    }
    return directories
  }

  /// Why a directory is not a cache.
  struct Problem: Error {
    let reason: String
  }

  /// The totals of a cache directory, or why it is not one: it must be a real directory holding
  /// only two-hex folders of entries and temporary files.
  private static func survey(_ url: URL, kind: EmbeddingCache.Kind) -> Result<Directory, Problem> {
    guard fileType(url) == .typeDirectory else {
      return .failure(Problem(reason: "a symbolic link or a file, not a directory"))
    }
    let keys: [URLResourceKey] = [
      .isDirectoryKey, .isRegularFileKey, .isSymbolicLinkKey, .fileSizeKey, .contentModificationDateKey,
    ]
    let manager = FileManager.default
    var modified = (try? url.resourceValues(forKeys: [.contentModificationDateKey]))?.contentModificationDate
    func note(_ date: Date?) {
      if let date, modified.map({ date > $0 }) ?? true { modified = date }
    }
    var entries = 0
    var bytes = 0
    let folders: [URL]
    do {
      folders = try manager.contentsOfDirectory(at: url, includingPropertiesForKeys: keys)
    } catch {
      return .failure(Problem(reason: "cannot read it: \(error.localizedDescription)"))
    }
    for folder in folders {
      let values = try? folder.resourceValues(forKeys: Set(keys))
      guard EmbeddingCache.isFolderName(folder.lastPathComponent), values?.isSymbolicLink == false,
        values?.isDirectory == true
      else {
        return .failure(Problem(reason: "unexpected \(folder.lastPathComponent)"))
      }
      note(values?.contentModificationDate)
      let files: [URL]
      do {
        files = try manager.contentsOfDirectory(at: folder, includingPropertiesForKeys: keys)
      } catch {
        return .failure(Problem(reason: "cannot read \(folder.path): \(error.localizedDescription)"))
      }
      for file in files {
        let values = try? file.resourceValues(forKeys: Set(keys))
        let name = file.lastPathComponent
        // A training or evaluation run writing this cache renames its temporary files into
        // entries: a cache file that has gone since the listing is skipped, not a stranger.
        if EmbeddingCache.isCacheFileName(name), fileType(file) == nil { continue }
        guard EmbeddingCache.isCacheFileName(name), values?.isSymbolicLink == false,
          values?.isRegularFile == true
        else {
          return .failure(Problem(reason: "unexpected \(folder.lastPathComponent)/\(name)"))
        }
        if EmbeddingCache.isEntryName(name) { entries += 1 }
        bytes += values?.fileSize ?? 0
        note(values?.contentModificationDate)
      }
    }
    return .success(Directory(url: url, kind: kind, entries: entries, bytes: bytes, modified: modified))
  }

  /// The type of the item at `url` itself (symbolic links not followed), or `nil` when absent.
  private static func fileType(_ url: URL) -> FileAttributeType? {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path) else { return nil }
    return attributes[.type] as? FileAttributeType
  }

  /// `2026-01-31T12:00:00Z`.
  private static func timestamp(_ date: Date) -> String {
    ISO8601DateFormatter().string(from: date)
  }

  /// Bytes in decimal units: `512 B`, `1.5 kB`, `8.1 GB`.
  static func humanBytes(_ bytes: Int) -> String {
    var value = Double(bytes)
    for unit in ["B", "kB", "MB", "GB"] {
      if value < 1000 { return unit == "B" ? "\(bytes) B" : String(format: "%.1f %@", value, unit) }
      value /= 1000
    }
    return String(format: "%.1f TB", value)
  }
}

extension EmbeddingCache.Kind {
  /// The kind of the sibling directory `name` of a base named `base`, `nil` for any other name or
  /// for the base itself.
  fileprivate static func sibling(name: String, base: String) -> EmbeddingCache.Kind? {
    guard let kind = EmbeddingCache.kind(ofDirectoryNamed: name, baseName: base), kind != .frozen else {
      return nil
    }
    return kind
  }
}
