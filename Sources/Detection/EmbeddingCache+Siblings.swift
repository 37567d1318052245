import Embeddings
import Foundation
import Hashing

extension EmbeddingCache {
  /// What a cache directory holds, told by its name beside the frozen encoder's cache `<base>`:
  /// `<base>` itself, `<base>-layers<k>` or `<base>-tuned-<16 hex>` (`EmbeddingProvider`'s
  /// `frozenStates(layerCount:)` and `adapted(to:)` create the siblings).
  package enum Kind: Hashable, Sendable, CustomStringConvertible {
    /// The frozen encoder's rows (`<base>`).
    case frozen
    /// The hidden states after the encoder's bottom `k` layers, the frozen input of fine-tuning
    /// (`<base>-layers<k>`).
    case layers(Int)
    /// The rows of an encoder with fine-tuned top layers, named by the first 16 hex of the layers'
    /// digest (`<base>-tuned-<digest16>`).
    case tuned(String)

    /// `frozen`, `layers<k>` or `tuned-<digest16>`: the suffix after `<base>-`, or `frozen`.
    package var description: String {
      switch self {
      case .frozen: "frozen"
      case .layers(let count): "layers\(count)"
      case .tuned(let digest): "tuned-\(digest)"
      }
    }
  }

  /// The directory beside `base` that holds `kind`'s rows.
  package static func directory(of kind: Kind, base: URL) -> URL {
    guard kind != .frozen else { return base }
    return base.deletingLastPathComponent().appendingPathComponent(
      base.lastPathComponent + "-" + kind.description, isDirectory: true)
  }

  /// The kind of the directory named `name` beside a base named `baseName`, or `nil` when the name
  /// is not one of that base's cache directories.
  package static func kind(ofDirectoryNamed name: String, baseName: String) -> Kind? {
    if name == baseName { return .frozen }
    guard name.hasPrefix(baseName + "-") else { return nil }
    let suffix = name.dropFirst(baseName.count + 1)
    if suffix.hasPrefix("layers") {
      let digits = suffix.dropFirst("layers".count)
      guard !digits.isEmpty, digits.count <= 4, digits.allSatisfy(\.isASCIIDigit), let count = Int(digits),
        count > 0
      else { return nil }
      return .layers(count)
    }
    if suffix.hasPrefix("tuned-") {
      let digest = suffix.dropFirst("tuned-".count)
      guard digest.count == 16, digest.allSatisfy(\.isLowercaseHexDigit) else { return nil }
      return .tuned(String(digest))
    }
    return nil
  }

  /// The first 16 hex of the digest of fine-tuned top layers, which names their rows' cache
  /// (`Kind.tuned`): the hex sha256 of the layers' values (little-endian float bits, in
  /// `namedTensors` order).
  package static func tunedDigest(of layers: [BertLayerWeights], hiddenSize: Int) -> String {
    var hasher = SHA256()
    for layer in layers {
      for (_, _, values) in layer.namedTensors(hiddenSize: hiddenSize) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for value in values {
          let bits = value.bitPattern
          bytes += [
            UInt8(bits & 0xff), UInt8((bits >> 8) & 0xff), UInt8((bits >> 16) & 0xff), UInt8(bits >> 24),
          ]
        }
        hasher.update(bytes)
      }
    }
    return String(SHA256.hex(hasher.finalize()).prefix(16))
  }

  /// Whether `name` is a file this cache writes inside a two-hex folder: an entry
  /// (`<64 hex>-w<maxWindows>.emb`) or an interrupted store's temporary file (`.<uuid>.tmp`).
  package static func isCacheFileName(_ name: String) -> Bool {
    isEntryName(name) || (name.hasPrefix(".") && name.hasSuffix(".tmp") && name.count > 5)
  }

  /// Whether `name` is an entry's file name, `<64 hex>-w<maxWindows>.emb`.
  package static func isEntryName(_ name: String) -> Bool {
    guard name.hasSuffix(".emb") else { return false }
    let stem = name.dropLast(".emb".count)
    guard let dash = stem.firstIndex(of: "-") else { return false }
    let digest = stem[..<dash]
    let windows = stem[stem.index(after: dash)...]
    return digest.count == 64 && digest.allSatisfy(\.isLowercaseHexDigit) && windows.hasPrefix("w")
      && windows.count > 1 && windows.dropFirst().allSatisfy(\.isASCIIDigit)
  }

  /// Whether `name` is one of the two-hex folders that hold the entries.
  package static func isFolderName(_ name: String) -> Bool {
    name.count == 2 && name.allSatisfy(\.isLowercaseHexDigit)
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
  fileprivate var isLowercaseHexDigit: Bool { isASCIIDigit || ("a"..."f").contains(self) }
}
