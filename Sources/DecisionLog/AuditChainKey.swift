import Foundation
import Hashing

/// A secret that keys the audit log's hash chain: every row's hash becomes
/// `HMAC-SHA-256(key, previous hash ‖ canonical row)` instead of `SHA-256(…)`, so whoever can
/// rewrite the database file but does not hold the key cannot recompute the chain after an edit.
///
/// The log records that it is keyed and the key's identifier (never the key) in its `meta` table;
/// a keyed log opens and verifies only with the same key (docs/audit-log.md, "Keyed chain").
public struct AuditChainKey: Sendable, Equatable {
  /// The fewest key bytes accepted.
  public static let minimumBytes = 16

  /// The key bytes.
  let bytes: [UInt8]

  /// A key from its bytes.
  ///
  /// - Throws: `.invalidInput` when it has fewer than `minimumBytes` bytes.
  public init(bytes: [UInt8]) throws(AuditLogError) {
    guard bytes.count >= Self.minimumBytes else {
      throw AuditLogError(
        .invalidInput, "an audit chain key needs at least \(Self.minimumBytes) bytes, got \(bytes.count)")
    }
    self.bytes = bytes
  }

  /// The key in a file: its bytes, without trailing line breaks (so `openssl rand -hex 32 > key`
  /// and `head -c 32 /dev/urandom > key` both work).
  ///
  /// - Throws: `.open` when the file cannot be read; `.invalidInput` when group or others may read
  ///   it (a key that others can read keys nothing) or when it is too short.
  public init(contentsOfFile path: String) throws(AuditLogError) {
    // The mode of the file itself, not of a symbolic link to it (secret mounts often link).
    let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    let attributes = try? FileManager.default.attributesOfItem(atPath: target)
    guard let data = FileManager.default.contents(atPath: path), let attributes else {
      throw AuditLogError(.open, "cannot read the audit key file \(path)")
    }
    if let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
      throw AuditLogError(
        .invalidInput,
        "the audit key file \(path) may be read by group or others (mode \(String(mode & 0o777, radix: 8))); "
          + "chmod 600 it")
    }
    var bytes = [UInt8](data)
    while let last = bytes.last, last == 0x0a || last == 0x0d { bytes.removeLast() }
    try self.init(bytes: bytes)
  }

  /// A public name for the key: the first 16 hexadecimal digits of
  /// `SHA-256("curvalid-audit-chain-key" ‖ key)`, stored in the log so that a wrong key is named
  /// as such instead of showing up as a broken first row.
  public var identifier: String {
    var hasher = SHA256()
    hasher.update(Array("curvalid-audit-chain-key".utf8))
    hasher.update(bytes)
    return String(SHA256.hex(hasher.finalize()).prefix(16))
  }
}
