/// HMAC with SHA-256 (RFC 2104, with the test vectors of RFC 4231), incremental.
///
/// Keys the audit log's hash chain, so that only a holder of the key can recompute it. Feed bytes
/// with `update`, then call `finalize()` once.
public struct HMACSHA256: Sendable {
  /// SHA-256's block size in bytes.
  private static let blockSize = 64
  private var inner = SHA256()
  private var outerKey: [UInt8]

  /// Starts a code under `key` (a key longer than the block size is hashed first, a shorter one is
  /// padded with zeros, as RFC 2104 says).
  public init(key: [UInt8]) {
    var block = key.count > Self.blockSize ? SHA256.hash(key) : key
    block += [UInt8](repeating: 0, count: Self.blockSize - block.count)
    outerKey = block.map { $0 ^ 0x5c }
    inner.update(block.map { $0 ^ 0x36 })
  }

  /// The 32-byte code of `message` under `key`.
  public static func authenticationCode(for message: [UInt8], key: [UInt8]) -> [UInt8] {
    var code = HMACSHA256(key: key)
    code.update(message)
    return code.finalize()
  }

  /// Adds bytes to the message.
  public mutating func update(_ bytes: [UInt8]) {
    inner.update(bytes)
  }

  /// The 32-byte code; call once.
  public mutating func finalize() -> [UInt8] {
    var outer = SHA256()
    outer.update(outerKey)
    outer.update(inner.finalize())
    return outer.finalize()
  }
}
