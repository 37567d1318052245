import Detection
import Embeddings
import Foundation

/// What `train`, `evaluate` and `model compare` share: the verified encoder, its identity for
/// bundles, and the embedding cache (`--encoder`, `--cache-dir`, `--no-cache`).
struct TrainingEnvironment {
  /// The text encoder.
  let encoder: TextEncoder
  /// The encoder's name and weights digest, as bundles record them.
  let identity: EncoderIdentity
  /// Where embeddings are cached for this encoder.
  let cacheDirectory: URL
  /// The cache at `cacheDirectory`, or `nil` under `--no-cache` (rows computed afresh in full
  /// precision, nothing read or written).
  let cache: EmbeddingCache?

  /// Loads the encoder named by `--encoder` (any weights) or the default one (pinned digest), and
  /// resolves `--cache-dir` (default: the cache root's `embeddings/<encoder digest>/`) and
  /// `--no-cache` (for the commands that take that flag).
  ///
  /// - Throws: `CommandError.usage` for `--no-cache` with `--cache-dir`, `.failure` with the
  ///   loader's one-line message.
  init(_ arguments: Arguments) throws(CommandError) {
    let noCache = arguments.flag("no-cache")
    guard !noCache || arguments.value("cache-dir") == nil else {
      throw .usage("--no-cache reads and writes no cache: give it or --cache-dir, not both")
    }
    let encoderPath = arguments.value("encoder")
    let store =
      encoderPath.map { EncoderStore(directory: URL(fileURLWithPath: $0, isDirectory: true)) }
      ?? EncoderStore()
    let digest: String
    do {
      digest = try store.verify(expectedSHA256: encoderPath == nil ? EncoderStore.weightsSHA256 : nil)
      encoder = try TextEncoder(directory: store.directory)
    } catch {
      throw .failure(error.message)
    }
    identity = EncoderIdentity(
      name: encoderPath == nil ? EncoderStore.encoderName : store.directory.lastPathComponent, sha256: digest)
    cacheDirectory =
      arguments.value("cache-dir").map { URL(fileURLWithPath: $0, isDirectory: true) }
      ?? EmbeddingCache.defaultDirectory(encoderDigest: digest)
    cache = noCache ? nil : EmbeddingCache(directory: cacheDirectory)
  }

  /// The embeddings of prompts through `cache`, keeping at most `maxWindows` windows.
  func provider(maxWindows: Int) -> EmbeddingProvider {
    EmbeddingProvider(encoder: encoder, cache: cache, maxWindows: maxWindows)
  }
}
