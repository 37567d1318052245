import Embeddings
import Foundation
import LinearAlgebra

/// Options shared by commands that run the encoder: `--encoder DIR` and `--threads N`.
enum EncoderOptions {
  /// Option names taking a value.
  static let names: Set<String> = ["encoder", "threads"]

  /// Help lines for the shared options.
  static let help = """
      --encoder DIR   encoder directory (config.json, vocab.txt, model.safetensors); default:
                      $CURVALID_ENCODER_DIR, else the cache that `bash tooling/setup.sh` fills
      --threads N     BLAS threads (default: $CURVALID_THREADS, else 2)
    """

  /// Sets the BLAS thread count from `--threads`, `CURVALID_THREADS` or the default of 2 (or the
  /// number of processors, if fewer).
  ///
  /// - Returns: The thread count in effect.
  /// - Throws: `CommandError.usage` for a value outside 1…64.
  @discardableResult
  static func applyThreads(_ arguments: Arguments) throws(CommandError) -> Int {
    let threads = try threads(arguments)
    BLAS.threadCount = threads
    return threads
  }

  /// The thread count `--threads` asks for, else `CURVALID_THREADS`, else `configured` (a config
  /// file's, already checked), else 2 (or the number of processors, if fewer).
  ///
  /// - Throws: `CommandError.usage` for a value outside 1…64.
  static func threads(_ arguments: Arguments, configured: Int? = nil) throws(CommandError) -> Int {
    let fallback: Int
    if let text = ProcessInfo.processInfo.environment["CURVALID_THREADS"], !text.isEmpty {
      guard let value = Int(text), (1...64).contains(value) else {
        throw .usage("CURVALID_THREADS must be an integer from 1 to 64, got '\(text)'")
      }
      fallback = value
    } else {
      fallback = configured ?? min(2, ProcessInfo.processInfo.activeProcessorCount)
    }
    return try arguments.integer("threads", default: fallback, in: 1...64)
  }

  /// Loads the text encoder named by `--encoder`, or the verified default encoder.
  ///
  /// - Throws: `CommandError.failure` with the loader's one-line message.
  static func load(_ arguments: Arguments) throws(CommandError) -> TextEncoder {
    do {
      if let path = arguments.value("encoder") {
        let store = EncoderStore(directory: URL(fileURLWithPath: path, isDirectory: true))
        try store.verify(expectedSHA256: nil)
        return try TextEncoder(directory: store.directory)
      }
      let store = EncoderStore()
      try store.verify()
      return try TextEncoder(directory: store.directory)
    } catch {
      throw .failure(error.message)
    }
  }
}
