import Foundation

/// One decision to log: what the service concluded about one request.
///
/// `time` is stored as whole UTC milliseconds (rounded to the nearest). Doubles are stored as
/// SQLite REALs; `NaN` is stored as `nil` (SQLite has no NaN) and `-0.0` as `0.0`, so that what is
/// hashed is exactly what is read back.
public struct AuditRecord: Sendable, Equatable {
  /// When the decision was made.
  public var time: Date
  /// The request's `id` from the wire, if any.
  public var requestID: String?
  /// The request's `client` field, if any.
  public var client: String?
  /// The peer address (`127.0.0.1:51234`, `unix`).
  public var peer: String?
  /// SHA-256 of the prompt's UTF-8 bytes, lower-case hexadecimal.
  public var promptSHA256: String
  /// The prompt itself; stored only when `AuditLogConfiguration.storePromptText` is on.
  public var promptText: String?
  /// Token rows the encoder produced.
  public var tokens: Int?
  /// Probability of "adversarial".
  public var score: Double?
  /// The model's threshold.
  public var threshold: Double?
  /// `accept`, `reject`, or `nil` when the request failed.
  public var decision: String?
  /// Canonical JSON text of the features.
  public var featuresJSON: String?
  /// The model bundle's identifier.
  public var modelID: String?
  /// Time from receiving the request to the decision.
  public var latencyMilliseconds: Double?
  /// The error code when the request failed (`prompt_too_long`, `internal`, …).
  public var error: String?
  /// For shadow-model rows: the id of the primary row.
  public var shadowOf: Int64?
  /// For a message of a `messages` request: its 0-based index in the request's `messages` array.
  public var messageIndex: Int?
  /// For a message of a `messages` request: its role (`user`, `tool`, …) as sent.
  public var role: String?

  /// Creates a record; everything but the time and the prompt digest is optional.
  public init(
    time: Date = Date(), requestID: String? = nil, client: String? = nil, peer: String? = nil,
    promptSHA256: String, promptText: String? = nil, tokens: Int? = nil, score: Double? = nil,
    threshold: Double? = nil, decision: String? = nil, featuresJSON: String? = nil, modelID: String? = nil,
    latencyMilliseconds: Double? = nil, error: String? = nil, shadowOf: Int64? = nil,
    messageIndex: Int? = nil, role: String? = nil
  ) {
    self.time = time
    self.requestID = requestID
    self.client = client
    self.peer = peer
    self.promptSHA256 = promptSHA256
    self.promptText = promptText
    self.tokens = tokens
    self.score = score
    self.threshold = threshold
    self.decision = decision
    self.featuresJSON = featuresJSON
    self.modelID = modelID
    self.latencyMilliseconds = latencyMilliseconds
    self.error = error
    self.shadowOf = shadowOf
    self.messageIndex = messageIndex
    self.role = role
  }
}

/// A committed row: the record as read back, its id and its links in the hash chain.
public struct StoredRecord: Sendable, Equatable {
  /// The row id (consecutive from 1; never reused, not even after retention).
  public var id: Int64
  /// The stored time in UTC milliseconds since 1970 (exactly; `record.time` is derived from it).
  public var timeMilliseconds: Int64
  /// The record as stored.
  public var record: AuditRecord
  /// The previous row's hash (or the checkpoint's, or the genesis value), hexadecimal.
  public var previousHash: String
  /// This row's hash, hexadecimal.
  public var hash: String
}

/// A labelled audited prompt, for retraining.
public struct LabeledPrompt: Sendable, Equatable {
  /// The decision row's id.
  public var id: Int64
  /// The stored prompt text.
  public var text: String
  /// `benign` or `adversarial`.
  public var label: String
  /// The operator's note.
  public var note: String?
  /// When the label was set, UTC milliseconds.
  public var timeMilliseconds: Int64
}

/// What `AuditLog.verify(path:)` found.
public struct VerificationReport: Sendable, Equatable {
  /// Decision rows whose hash and link were checked (up to and including the first broken one).
  public var rowsChecked: Int
  /// Retention checkpoints checked.
  public var checkpointsChecked: Int
  /// The first decision row that does not verify (edited, reordered, inserted, or the first row after
  /// a gap), or `nil`.
  public var firstBrokenRowID: Int64?
  /// The first checkpoint that does not verify, or `nil`.
  public var firstBrokenCheckpointID: Int64?
  /// Why the first broken row or checkpoint fails, one line.
  public var reason: String?
  /// The hash the decision chain starts from: the latest checkpoint's, or 64 zeros.
  public var startHash: String
  /// The id and hash of the last row checked (the chain's head when the log verifies).
  public var headID: Int64?
  /// The head's hash (equal to `startHash` when there are no rows).
  public var headHash: String

  /// Whether every checkpoint and row verified.
  public var isValid: Bool { firstBrokenRowID == nil && firstBrokenCheckpointID == nil }

  /// Throws `.verification` with the reason when the log does not verify.
  public func requireValid() throws(AuditLogError) {
    guard !isValid else { return }
    let location =
      if let id = firstBrokenCheckpointID { "checkpoint \(id)" } else { "row \(firstBrokenRowID ?? 0)" }
    throw AuditLogError(.verification, "audit log does not verify at \(location): \(reason ?? "unknown")")
  }
}

/// Counters of one open `AuditLog`.
public struct AuditLogStatistics: Sendable, Equatable {
  /// Rows this instance committed since it was opened.
  public var committedRows: Int64
  /// Rows queued or being committed now.
  public var pending: Int
  /// Commit attempts (transactions) that failed since opening.
  public var failedCommits: Int
  /// Async-mode rows whose commit failed (their callers had already returned); reported by `flush`.
  public var lostRows: Int
}
