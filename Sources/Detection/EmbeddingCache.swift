import Embeddings
import Foundation
import Hashing
import LinearAlgebra

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Context-free token rows for blocks that look for phrases wherever they sit
/// (`BertEncoder.lexicalRows(ids:)`).
public protocol TokenLexicon: Sendable {
  /// One row per id, `[ids.count, hidden]`.
  func lexicalRows(ids: [Int]) throws(EmbeddingsError) -> Matrix
  /// The mean of each prompt's rows after the bottom `layerCount` encoder layers, `[prompts, hidden]`.
  func lowerLayerMeans(_ prompts: [[Int]], layerCount: Int) throws(EmbeddingsError) -> Matrix
}

extension BertEncoder: TokenLexicon {}

/// The token embeddings of one prompt as the detector uses them.
public struct PromptEmbedding: Sendable, Equatable {
  /// Token ids of the rows kept, `[rows]` (`[CLS] … [SEP]` per window).
  public var ids: [Int]
  /// Encoder output rows, `[rows, hidden]` (the first `maxWindows` windows of the prompt).
  public var hidden: Matrix
  /// Token rows of the whole prompt over all windows (≥ `ids.count`).
  public var totalTokens: Int
  /// The encoder that made `hidden`, for `lexicalRows()` (`EmbeddingProvider` sets it; not part
  /// of equality, not cached).
  public var lexicon: (any TokenLexicon)?
  /// The mean of the rows after the encoder's first `LowerLayerMeanBlock.layerCount` layers,
  /// `[hidden]`, when the embedding was just encoded (taken in the same pass); `nil` for a cache
  /// entry, whose block recomputes it from `ids` with the lexicon. Not part of equality, not cached.
  public var lowerLayerMean: [Float]?

  /// Creates an embedding.
  public init(
    ids: [Int], hidden: Matrix, totalTokens: Int, lexicon: (any TokenLexicon)? = nil,
    lowerLayerMean: [Float]? = nil
  ) {
    self.ids = ids
    self.hidden = hidden
    self.totalTokens = totalTokens
    self.lexicon = lexicon
    self.lowerLayerMean = lowerLayerMean
  }

  /// The context-free rows of `ids` (`[ids.count, hidden]`), or `nil` without a lexicon.
  ///
  /// - Throws: `DetectionError(.internalError)` when the lexicon rejects an id.
  public func lexicalRows() throws(DetectionError) -> Matrix? {
    guard let lexicon else { return nil }
    do {
      return try lexicon.lexicalRows(ids: ids)
    } catch {
      throw DetectionError(.internalError, "lexical rows: \(error.message)")
    }
  }

  public static func == (lhs: PromptEmbedding, rhs: PromptEmbedding) -> Bool {
    lhs.ids == rhs.ids && lhs.hidden == rhs.hidden && lhs.totalTokens == rhs.totalTokens
  }
}

/// An on-disk cache of prompt embeddings keyed by encoder digest and text digest.
///
/// Layout: `directory/<first 2 hex of the text digest>/<text sha256>-w<maxWindows>.emb`, where
/// `directory` already names the encoder (`EmbeddingCache.defaultDirectory`). A file holds a
/// 28-byte header (magic `CVEM`, version, rows, columns, total tokens, maximum windows,
/// reserved), the ids as `Int32`, the rows as IEEE half precision (2 bytes per value: the full
/// DATA.md corpus needs ≈ 1 GB at one window per prompt), and an FNV-1a 64 checksum of everything
/// before it. Files are written to a temporary name and renamed, so an interrupted run leaves no
/// partial entry; a file that fails any check is deleted and counts as a miss.
///
/// Instances are immutable and safe to share between threads.
public struct EmbeddingCache: Sendable {
  /// The directory of this encoder's entries.
  public let directory: URL

  private static let magic: UInt32 = 0x4D45_5643  // "CVEM" little-endian
  private static let version: UInt32 = 1
  private static let headerBytes = 28

  /// Uses `directory` for entries (created on first store).
  public init(directory: URL) {
    self.directory = directory
  }

  /// `EncoderStore.cacheRoot()/embeddings/<first 16 hex of the encoder digest>/`.
  public static func defaultDirectory(encoderDigest: String) -> URL {
    EncoderStore.cacheRoot().appendingPathComponent(
      "embeddings/\(encoderDigest.prefix(16))", isDirectory: true)
  }

  /// The entry file of a text.
  public func url(forText text: String, maxWindows: Int) -> URL {
    let digest = SHA256.hexDigest(of: text)
    return directory.appendingPathComponent(String(digest.prefix(2)), isDirectory: true)
      .appendingPathComponent("\(digest)-w\(maxWindows).emb")
  }

  /// The cached embedding of `text`, or `nil` on a miss; a corrupt entry is removed.
  public func load(text: String, maxWindows: Int) -> PromptEmbedding? {
    let url = url(forText: text, maxWindows: maxWindows)
    guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
    if let embedding = Self.decode(data, maxWindows: maxWindows) { return embedding }
    try? FileManager.default.removeItem(at: url)
    return nil
  }

  /// Stores an embedding atomically (temporary file, then rename).
  ///
  /// - Throws: `DetectionError(.io)` when the directory or file cannot be written.
  public func store(_ embedding: PromptEmbedding, text: String, maxWindows: Int) throws(DetectionError) {
    let url = url(forText: text, maxWindows: maxWindows)
    let folder = url.deletingLastPathComponent()
    do {
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
      throw DetectionError(.io, "cannot create cache directory \(folder.path): \(error.localizedDescription)")
    }
    let bytes = Self.encode(embedding, maxWindows: maxWindows)
    let temporary = folder.appendingPathComponent(".\(UUID().uuidString).tmp")
    do {
      try Data(bytes).write(to: temporary)
      guard rename(temporary.path, url.path) == 0 else {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: temporary)
        throw DetectionError(.io, "cannot rename cache entry to \(url.path): \(reason)")
      }
    } catch let error as DetectionError {
      throw error
    } catch {
      try? FileManager.default.removeItem(at: temporary)
      throw DetectionError(.io, "cannot write cache entry \(url.path): \(error.localizedDescription)")
    }
  }

  /// Serialises an entry (see the type's layout).
  static func encode(_ embedding: PromptEmbedding, maxWindows: Int) -> [UInt8] {
    let rows = embedding.hidden.rows
    let columns = embedding.hidden.columns
    var bytes: [UInt8] = []
    bytes.reserveCapacity(headerBytes + 4 * rows + 2 * rows * columns + 8)
    func append32(_ value: UInt32) {
      withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
    append32(magic)
    append32(version)
    append32(UInt32(rows))
    append32(UInt32(columns))
    append32(UInt32(embedding.totalTokens))
    append32(UInt32(maxWindows))
    append32(0)
    for id in embedding.ids { append32(UInt32(bitPattern: Int32(truncatingIfNeeded: id))) }
    for value in embedding.hidden.storage {
      let half = HalfPrecision.bits(value).littleEndian
      bytes.append(UInt8(half & 0xFF))
      bytes.append(UInt8(half >> 8))
    }
    let checksum = fnv1a(bytes[...]).littleEndian
    withUnsafeBytes(of: checksum) { bytes.append(contentsOf: $0) }
    return bytes
  }

  /// Parses an entry; `nil` for anything malformed.
  static func decode(_ data: Data, maxWindows: Int) -> PromptEmbedding? {
    let bytes = [UInt8](data)
    guard bytes.count >= headerBytes + 8 else { return nil }
    func read32(_ offset: Int) -> UInt32 {
      UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
        | UInt32(bytes[offset + 3]) << 24
    }
    guard read32(0) == magic, read32(4) == version, read32(20) == UInt32(maxWindows) else { return nil }
    let rows = Int(read32(8))
    let columns = Int(read32(12))
    let total = Int(read32(16))
    let payload = headerBytes + 4 * rows + 2 * rows * columns
    guard rows > 0, columns > 0, total >= rows, bytes.count == payload + 8 else { return nil }
    var stored: UInt64 = 0
    for index in 0..<8 { stored |= UInt64(bytes[payload + index]) << (8 * index) }
    guard fnv1a(bytes[0..<payload]) == stored else { return nil }
    var ids = [Int](repeating: 0, count: rows)
    for row in 0..<rows { ids[row] = Int(Int32(bitPattern: read32(headerBytes + 4 * row))) }
    let start = headerBytes + 4 * rows
    let count = rows * columns
    let values = [Float](unsafeUninitializedCapacity: count) { output, initialized in
      for index in 0..<count {
        let bits = UInt16(bytes[start + 2 * index]) | UInt16(bytes[start + 2 * index + 1]) << 8
        output[index] = SafetensorsFile.floatFromHalf(bits)
      }
      initialized = count
    }
    return PromptEmbedding(
      ids: ids, hidden: Matrix(rows: rows, columns: columns, storage: values), totalTokens: total)
  }

  /// FNV-1a, 64 bits.
  private static func fnv1a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return hash
  }
}

/// IEEE 754 half precision conversion (round to nearest, ties to even).
enum HalfPrecision {
  /// The half-precision bit pattern nearest to `value` (overflow gives ±infinity).
  static func bits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    let mantissa = bits & 0x7F_FFFF
    if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }
    let biased = exponent - 127 + 15
    if biased >= 0x1F { return sign | 0x7C00 }
    if biased <= 0 {
      guard biased >= -10 else { return sign }
      let full = mantissa | 0x80_0000
      let shift = UInt32(14 - biased)
      var half = full >> shift
      let remainder = full & ((1 << shift) - 1)
      let halfway = UInt32(1) << (shift - 1)
      if remainder > halfway || (remainder == halfway && half & 1 == 1) { half += 1 }
      return sign | UInt16(half)
    }
    var half = UInt32(biased << 10) | (mantissa >> 13)
    let remainder = mantissa & 0x1FFF
    if remainder > 0x1000 || (remainder == 0x1000 && half & 1 == 1) { half += 1 }
    return sign | UInt16(half)
  }
}

/// Embeds prompts through a `TextEncoder`, keeping at most `maxWindows` windows per prompt, with an
/// optional on-disk cache.
public struct EmbeddingProvider: Sendable {
  /// The encoder.
  public let encoder: TextEncoder
  /// The cache, if any.
  public let cache: EmbeddingCache?
  /// Encoder windows kept per prompt (0 keeps all).
  public let maxWindows: Int

  /// Creates a provider.
  public init(encoder: TextEncoder, cache: EmbeddingCache?, maxWindows: Int) {
    self.encoder = encoder
    self.cache = cache
    self.maxWindows = maxWindows
  }

  /// The layer count after which an encoding pass takes each reading's mean for `layer1_mean`
  /// (`PromptEmbedding.lowerLayerMean`), or `nil` for an encoder with fewer layers (the frozen
  /// bottom of a fully tuned encoder).
  var lowerLayerCapture: Int? {
    encoder.model.layers.count >= LowerLayerMeanBlock.layerCount ? LowerLayerMeanBlock.layerCount : nil
  }

  /// Embeds texts without touching the cache.
  ///
  /// - Returns: One embedding per text, in order.
  /// - Throws: `DetectionError(.internalError)` when the encoder fails.
  public func embedUncached(_ texts: [String]) throws(DetectionError) -> [PromptEmbedding] {
    let windows = texts.map { encoder.windows(for: $0) }
    let kept = windows.map { maxWindows > 0 ? Array($0.prefix(maxWindows)) : $0 }
    let embedded: [TokenEmbeddings]
    do {
      embedded = try encoder.embed(windows: kept, meanAfterLayers: lowerLayerCapture)
    } catch {
      throw DetectionError(.internalError, "the encoder failed: \(error.message)")
    }
    return zip(embedded, windows).map { result, all in
      PromptEmbedding(
        ids: result.ids, hidden: result.hidden, totalTokens: all.reduce(0) { $0 + $1.count },
        lexicon: encoder.model, lowerLayerMean: result.lowerLayerMean)
    }
  }

  /// Embeds texts, using and filling the cache.
  ///
  /// - Returns: One embedding per text, in order.
  /// - Throws: `DetectionError` from the encoder or the cache.
  public func embed(_ texts: [String]) throws(DetectionError) -> [PromptEmbedding] {
    guard let cache else { return try embedUncached(texts) }
    var results = [PromptEmbedding?](repeating: nil, count: texts.count)
    var missing: [Int] = []
    for (index, text) in texts.enumerated() {
      if var hit = cache.load(text: text, maxWindows: maxWindows) {
        hit.lexicon = encoder.model
        results[index] = hit
      } else {
        missing.append(index)
      }
    }
    if !missing.isEmpty {
      let computed = try embedUncached(missing.map { texts[$0] })
      for (index, embedding) in zip(missing, computed) {
        try cache.store(embedding, text: texts[index], maxWindows: maxWindows)
        results[index] = embedding
      }
    }
    return results.compactMap { $0 }
  }

  /// Makes sure every text is in the cache, embedding the misses in length-sorted batches.
  ///
  /// - Parameters:
  ///   - texts: The texts (duplicates are embedded once).
  ///   - progress: Receives `(done, total)` after each batch of misses.
  /// - Returns: The number of texts embedded now and the seconds it took.
  /// - Throws: `DetectionError` from the encoder or the cache.
  @discardableResult
  public func fill(
    _ texts: [String], progress: ProgressReporter? = nil
  ) throws(DetectionError) -> (embedded: Int, seconds: Double) {
    guard let cache else { return (0, 0) }
    var seen = Set<String>()
    var missing: [(text: String, pieces: Int)] = []
    for text in texts where seen.insert(text).inserted {
      if !FileManager.default.fileExists(atPath: cache.url(forText: text, maxWindows: maxWindows).path) {
        missing.append((text, encoder.tokenizer.pieceIDs(for: text).count))
      }
    }
    guard !missing.isEmpty else { return (0, 0) }
    missing.sort { $0.pieces < $1.pieces }
    let clock = ContinuousClock()
    let start = clock.now
    var done = 0
    let limit = maxWindows > 0 ? maxWindows * encoder.model.configuration.maxPositions : Int.max
    let totalTokens = missing.reduce(0) { $0 + min($1.pieces + 2, limit) }
    progress?.note("embedding: \(missing.count) prompts not cached yet, \(totalTokens) tokens")
    progress?.begin("embedding tokens", total: totalTokens)
    var tokensDone = 0
    while done < missing.count {
      var end = done
      var tokens = 0
      while end < missing.count, end == done || tokens < 4 * TextEncoder.tokensPerModelCall {
        tokens += min(missing[end].pieces + 2, limit)
        end += 1
      }
      let batch = missing[done..<end].map(\.text)
      let embedded = try embedUncached(batch)
      for (text, embedding) in zip(batch, embedded) {
        try cache.store(embedding, text: text, maxWindows: maxWindows)
      }
      tokensDone += missing[done..<end].reduce(0) { $0 + min($1.pieces + 2, limit) }
      done = end
      progress?.update(tokensDone)
    }
    progress?.finish()
    let elapsed = clock.now - start
    return (
      missing.count, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    )
  }
}
