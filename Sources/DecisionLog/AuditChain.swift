import Foundation
import Hashing

/// The hash chain's serialisation (documented in docs/audit-log.md, "Hash chain").
///
/// A canonical row is a sequence of fields, each one tag byte followed by its payload:
/// `0x00` null (no payload); `0x01` integer (8 bytes, big-endian two's complement); `0x02` real
/// (8 bytes, big-endian IEEE-754 bit pattern); `0x03` text (8-byte big-endian byte count, then the
/// UTF-8 bytes). The first field is a text naming the table and version, so a decision row can never
/// hash like a checkpoint. `hash = SHA-256(previous hash as 32 raw bytes ‖ canonical row)`, or
/// with an `AuditChainKey`, `HMAC-SHA-256(key, previous hash ‖ canonical row)`.
///
/// A decision row with neither a message index nor a role (every row of schema version 1, and
/// every `prompt` request's row since) hashes as `curvalid.decisions.v1` over `id` and the fifteen
/// columns up to `shadow_of`; a row with either hashes as `curvalid.decisions.v2` over all of them
/// and `message_index`, `role`. So version-1 rows verify unchanged after the upgrade, and blanking a
/// message row's role or index breaks its hash.
enum AuditChain {
  /// The previous hash of the first row and of the first checkpoint: 64 zeros.
  static let genesis = String(repeating: "0", count: 64)

  static let decisionTag = "curvalid.decisions.v1"
  static let messageDecisionTag = "curvalid.decisions.v2"
  static let checkpointTag = "curvalid.checkpoints.v1"

  /// Appends SQL values in the canonical form.
  struct Encoder {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func append(_ value: SQLValue) {
      switch value {
      case .null:
        bytes.append(0x00)
      case .integer(let v):
        bytes.append(0x01)
        appendBigEndian(UInt64(bitPattern: v))
      case .real(let v):
        bytes.append(0x02)
        appendBigEndian(v.bitPattern)
      case .text(let v):
        bytes.append(0x03)
        appendBigEndian(UInt64(v.utf8.count))
        bytes.append(contentsOf: v.utf8)
      }
    }

    private mutating func appendBigEndian(_ v: UInt64) {
      for shift in stride(from: 56, through: 0, by: -8) {
        bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
      }
    }
  }

  /// `SHA-256(previous ‖ canonical(values))`, or `HMAC-SHA-256(key, …)` with a key, as
  /// hexadecimal; `nil` when `previous` is not 64 hex digits.
  static func hash(previous: String, tag: String, values: [SQLValue], key: AuditChainKey?) -> String? {
    guard let previousBytes = bytes(fromHex: previous), previousBytes.count == 32 else { return nil }
    var encoder = Encoder()
    encoder.append(.text(tag))
    for value in values { encoder.append(value) }
    guard let key else {
      var hasher = SHA256()
      hasher.update(previousBytes)
      hasher.update(encoder.bytes)
      return SHA256.hex(hasher.finalize())
    }
    var code = HMACSHA256(key: key.bytes)
    code.update(previousBytes)
    code.update(encoder.bytes)
    return SHA256.hex(code.finalize())
  }

  /// Bytes of a lower-case hexadecimal string, or `nil` when it is not one.
  static func bytes(fromHex hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count.isMultiple(of: 2) else { return nil }
    var out = [UInt8]()
    out.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
      guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
      out.append(high << 4 | low)
      index += 2
    }
    return out
  }

  private static func nibble(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    default: nil
    }
  }
}

/// One decision row's stored columns (without id and hashes), normalised exactly as SQLite returns them.
struct DecisionFields: Sendable, Equatable {
  var timeMilliseconds: Int64
  var requestID: String?
  var client: String?
  var peer: String?
  var promptSHA256: String
  var promptText: String?
  var tokens: Int64?
  var score: Double?
  var threshold: Double?
  var decision: String?
  var features: String?
  var model: String?
  var latencyMilliseconds: Double?
  var error: String?
  var shadowOf: Int64?
  var messageIndex: Int64?
  var role: String?

  /// The columns after `id` (`time_ms` … `shadow_of`, then `message_index` and `role`, which schema
  /// version 2 added).
  static let columns =
    "time_ms, request_id, client, peer, prompt_sha256, prompt_text, tokens, score, threshold, decision, "
    + "features, model, latency_ms, error, shadow_of, message_index, role"
  /// How many names `columns` lists.
  static let columnCount = 17

  /// `columns` as a query of a log with `schemaVersion` selects them: a version-1 log has no
  /// `message_index` and `role`, which read as null.
  static func columns(schemaVersion: Int) -> String {
    schemaVersion >= 2
      ? columns
      : columns.replacingOccurrences(of: "message_index, role", with: "NULL AS message_index, NULL AS role")
  }

  /// Normalises a record for storage.
  ///
  /// - Throws: `.invalidInput` when the time is outside the range of 64-bit milliseconds or the
  ///   digest is not 64 hexadecimal digits.
  init(_ record: AuditRecord, storePromptText: Bool) throws(AuditLogError) {
    let milliseconds = (record.time.timeIntervalSince1970 * 1000).rounded()
    guard milliseconds.isFinite, abs(milliseconds) < 9.0e15 else {
      throw AuditLogError(.invalidInput, "audit record time \(record.time) is out of range")
    }
    let digest = record.promptSHA256.lowercased()
    guard digest.utf8.count == 64, AuditChain.bytes(fromHex: digest) != nil else {
      throw AuditLogError(
        .invalidInput,
        "audit record promptSHA256 must be 64 hexadecimal digits, got \(record.promptSHA256.count) characters"
      )
    }
    timeMilliseconds = Int64(milliseconds)
    requestID = record.requestID
    client = record.client
    peer = record.peer
    promptSHA256 = digest
    promptText = storePromptText ? record.promptText : nil
    tokens = record.tokens.map(Int64.init)
    score = Self.storable(record.score)
    threshold = Self.storable(record.threshold)
    decision = record.decision
    features = record.featuresJSON
    model = record.modelID
    latencyMilliseconds = Self.storable(record.latencyMilliseconds)
    error = record.error
    shadowOf = record.shadowOf
    messageIndex = record.messageIndex.map(Int64.init)
    role = record.role
  }

  /// Reads the columns from a statement whose result starts with them at `offset`.
  init(statement s: SQLiteStatement, offset: Int32) {
    func real(_ i: Int32) -> Double? {
      switch s.value(offset + i) {
      case .real(let v): v
      case .integer(let v): Double(v)
      default: nil
      }
    }
    timeMilliseconds = s.integer(offset) ?? 0
    requestID = s.text(offset + 1)
    client = s.text(offset + 2)
    peer = s.text(offset + 3)
    promptSHA256 = s.text(offset + 4) ?? ""
    promptText = s.text(offset + 5)
    tokens = s.integer(offset + 6)
    score = real(7)
    threshold = real(8)
    decision = s.text(offset + 9)
    features = s.text(offset + 10)
    model = s.text(offset + 11)
    latencyMilliseconds = real(12)
    error = s.text(offset + 13)
    shadowOf = s.integer(offset + 14)
    messageIndex = s.integer(offset + 15)
    role = s.text(offset + 16)
  }

  /// SQLite stores NaN as NULL and may store an integral REAL as an integer (losing `-0.0`).
  private static func storable(_ value: Double?) -> Double? {
    guard let value, !value.isNaN else { return nil }
    return value == 0 ? 0 : value
  }

  /// The bound values, in `columns` order.
  var values: [SQLValue] {
    func text(_ v: String?) -> SQLValue { v.map(SQLValue.text) ?? .null }
    func int(_ v: Int64?) -> SQLValue { v.map(SQLValue.integer) ?? .null }
    func real(_ v: Double?) -> SQLValue { v.map(SQLValue.real) ?? .null }
    return [
      .integer(timeMilliseconds), text(requestID), text(client), text(peer), .text(promptSHA256),
      text(promptText), int(tokens), real(score), real(threshold), text(decision), text(features),
      text(model), real(latencyMilliseconds), text(error), int(shadowOf), int(messageIndex), text(role),
    ]
  }

  /// The row's hash given its id and the previous hash (`nil` when `previous` is malformed): the
  /// version-1 form without a message index and role, the version-2 form with either.
  func hash(id: Int64, previous: String, key: AuditChainKey?) -> String? {
    let all = [.integer(id)] + values
    return messageIndex == nil && role == nil
      ? AuditChain.hash(
        previous: previous, tag: AuditChain.decisionTag, values: Array(all.dropLast(2)), key: key)
      : AuditChain.hash(previous: previous, tag: AuditChain.messageDecisionTag, values: all, key: key)
  }

  /// The public record.
  var record: AuditRecord {
    AuditRecord(
      time: Date(timeIntervalSince1970: Double(timeMilliseconds) / 1000), requestID: requestID,
      client: client,
      peer: peer, promptSHA256: promptSHA256, promptText: promptText,
      tokens: tokens.map { Int(clamping: $0) },
      score: score, threshold: threshold, decision: decision, featuresJSON: features, modelID: model,
      latencyMilliseconds: latencyMilliseconds, error: error, shadowOf: shadowOf,
      messageIndex: messageIndex.map { Int(clamping: $0) }, role: role)
  }
}

/// One retention checkpoint: rows up to `throughID` were deleted; the last of them had `throughHash`.
struct CheckpointFields: Equatable {
  var id: Int64
  var timeMilliseconds: Int64
  var throughID: Int64
  var throughHash: String
  var deletedRows: Int64

  /// The checkpoint's hash, chained to the previous checkpoint's hash.
  func hash(previous: String, key: AuditChainKey?) -> String? {
    AuditChain.hash(
      previous: previous, tag: AuditChain.checkpointTag,
      values: [
        .integer(id), .integer(timeMilliseconds), .integer(throughID), .text(throughHash),
        .integer(deletedRows),
      ], key: key)
  }
}
