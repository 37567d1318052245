import Detection
import Embeddings
import Foundation

/// Finds and loads the model bundle and encoder for `score` and `serve`.
enum ModelLoading {
  /// The `--threshold` option: a decision threshold in [0, 1] replacing the bundle's, or `nil`.
  ///
  /// - Throws: `CommandError.usage` for anything but a number from 0 to 1.
  static func threshold(_ text: String?, source: String = "--threshold") throws(CommandError) -> Float? {
    guard let text else { return nil }
    guard let value = Float(text), value >= 0, value <= 1 else {
      throw .usage("\(source) must be a number from 0 to 1, got '\(text)'")
    }
    return value
  }

  /// The default bundle: `$CURVALID_MODEL`, else `server/models/default.safetensors` in the
  /// repository holding the executable (searched upwards from it), else relative to the working
  /// directory.
  static func defaultBundlePath() -> String {
    let environment = ProcessInfo.processInfo.environment
    if let path = environment["CURVALID_MODEL"], !path.isEmpty { return path }
    let relative = "server/models/default.safetensors"
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
      .deletingLastPathComponent()
    for _ in 0..<8 {
      let candidate = directory.appendingPathComponent(relative)
      if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
      directory = directory.deletingLastPathComponent()
    }
    return relative
  }

  /// Loads a detector: the bundle (default: `defaultBundlePath()`) and the encoder (default: the
  /// verified cache), refusing a bundle made for other encoder weights. `threshold` replaces the
  /// bundle's calibrated threshold (`nil`: keep it).
  ///
  /// - Throws: `CommandError.failure` with a one-line message.
  static func loadDetector(bundlePath: String?, encoderDirectory: String?, threshold: Float? = nil)
    throws(CommandError) -> Detector
  {
    let store =
      encoderDirectory.map { EncoderStore(directory: URL(fileURLWithPath: $0, isDirectory: true)) }
      ?? EncoderStore()
    let digest: String
    let encoder: TextEncoder
    do {
      digest = try store.verify(expectedSHA256: encoderDirectory == nil ? EncoderStore.weightsSHA256 : nil)
      encoder = try TextEncoder(directory: store.directory)
    } catch {
      throw .failure(error.message)
    }
    let path = bundlePath ?? defaultBundlePath()
    guard FileManager.default.fileExists(atPath: path) else {
      throw .failure(
        "model bundle \(path) not found; train one with `curvalid train` or pass --model (or set CURVALID_MODEL)"
      )
    }
    do {
      return try Detector(
        contentsOf: URL(fileURLWithPath: path), encoder: encoder, encoderSHA256: digest, threshold: threshold)
    } catch {
      throw .failure(error.message)
    }
  }

  /// Loads a second bundle (a shadow candidate) on the encoder `primary` already holds, refusing
  /// a bundle made for other encoder weights.
  ///
  /// - Throws: `CommandError.failure` with a one-line message.
  static func loadDetector(bundlePath: String, sharingEncoderOf primary: Detector) throws(CommandError)
    -> Detector
  {
    guard FileManager.default.fileExists(atPath: bundlePath) else {
      throw .failure("shadow model bundle \(bundlePath) not found")
    }
    do {
      return try Detector(
        contentsOf: URL(fileURLWithPath: bundlePath), encoder: primary.baseEncoder,
        encoderSHA256: primary.bundle.encoderSHA256)
    } catch {
      throw .failure("shadow model: \(error.message)")
    }
  }
}
