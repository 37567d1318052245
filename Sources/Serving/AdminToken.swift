import Hashing

/// The admin token, compared in constant time.
struct AdminToken: Sendable {
  private let digest: [UInt8]

  /// Keeps only the SHA-256 of `token`.
  init(_ token: String) { digest = SHA256.hash(Array(token.utf8)) }

  /// Whether `candidate` is the token.
  ///
  /// Both sides are hashed first, so the comparison takes the same time whatever the candidate's
  /// length or content, and XOR-accumulates all 32 bytes without an early exit.
  func matches(_ candidate: String) -> Bool {
    let other = SHA256.hash(Array(candidate.utf8))
    var difference: UInt8 = 0
    for index in 0..<digest.count { difference |= digest[index] ^ other[index] }
    return difference == 0
  }
}
