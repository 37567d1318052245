/// One audit row as the service hands it to the recorder (DESIGN.md §5).
///
/// Scored requests fill the decision fields; requests that failed before or during scoring fill
/// `error` instead. The prompt text is present only when the service is configured to store it.
public struct AuditEntry: Sendable, Equatable {
  /// When the request was received, milliseconds since the Unix epoch (UTC).
  public var timeMilliseconds: Int64
  /// The request's `id` as sent (rendered as text), if it had one.
  public var requestID: String?
  /// The request's `client` field, if any.
  public var client: String?
  /// The peer: `IP:PORT` for TCP, `unix` for Unix sockets.
  public var peer: String
  /// SHA-256 of the prompt's UTF-8 bytes, lower-case hex.
  public var promptSHA256: String
  /// The prompt, only when storing prompt text is configured.
  public var promptText: String?
  /// Token rows the encoder produced.
  public var tokens: Int?
  /// The model's score.
  public var score: Float?
  /// The model's threshold.
  public var threshold: Float?
  /// `accept` or `reject`.
  public var decision: String?
  /// The features as a JSON object text (`{"name":value,…}`).
  public var featuresJSON: String?
  /// The model that decided.
  public var modelID: String?
  /// Milliseconds from receipt to the decision (before auditing).
  public var latencyMilliseconds: Double?
  /// The error code (`overloaded`, `prompt_too_long`, …) when there is no model decision.
  public var error: String?
  /// For a shadow model's decision: the audit id of the served decision it shadows.
  public var shadowOf: Int64?
  /// For a message of a `messages` request: its 0-based index in the request's `messages` array.
  public var messageIndex: Int?
  /// For a message of a `messages` request: its role as sent.
  public var role: String?

  /// Creates an entry.
  public init(
    timeMilliseconds: Int64, requestID: String?, client: String?, peer: String, promptSHA256: String,
    promptText: String? = nil, tokens: Int? = nil, score: Float? = nil, threshold: Float? = nil,
    decision: String? = nil, featuresJSON: String? = nil, modelID: String? = nil,
    latencyMilliseconds: Double? = nil, error: String? = nil, shadowOf: Int64? = nil,
    messageIndex: Int? = nil, role: String? = nil
  ) {
    self.timeMilliseconds = timeMilliseconds
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

/// Where decisions are recorded: the SQLite audit log in production, in-memory stand-ins in tests.
///
/// The service awaits `record` before replying (durable mode: the recorder returns after its
/// transaction commits, so the row id can be in the reply; an asynchronous recorder may return
/// at once with `nil`). When `record` throws, `AuditFailurePolicy` decides the reply.
public protocol DecisionRecorder: Sendable {
  /// Records one entry.
  ///
  /// - Returns: The row id, when the recorder knows it.
  /// - Throws: Any error: the decision is treated as not audited.
  func record(_ entry: AuditEntry) async throws -> Int64?

  /// Writes out everything buffered (called once the service has drained, before exit).
  func flush() throws
}
