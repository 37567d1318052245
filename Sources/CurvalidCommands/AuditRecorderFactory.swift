import DecisionLog
import Foundation
import Serving

/// Opens the SQLite audit log for `curvalid serve` and adapts it to the service's recorder.
enum AuditRecorderFactory {
  /// Opens (creating if needed) the audit database at `path`.
  ///
  /// - Parameters:
  ///   - path: The SQLite file.
  ///   - durable: Reply only after the row's transaction committed (`true`), or queue and reply.
  ///   - storePromptText: Keep prompt text in the log (default off: only its SHA-256).
  ///   - key: The chain's key, or `nil` for the unkeyed chain.
  /// - Throws: `CommandError.failure` with the audit log's one-line reason.
  static func open(path: String, durable: Bool, storePromptText: Bool, key: AuditChainKey? = nil)
    throws(CommandError) -> AuditLogRecorder
  {
    do {
      let log = try AuditLog(
        configuration: AuditLogConfiguration(
          path: path, durability: durable ? .durable : .async, storePromptText: storePromptText,
          chainKey: key))
      return AuditLogRecorder(log: log)
    } catch {
      throw .failure("cannot open the audit log: \(error.message)")
    }
  }
}

/// `DecisionRecorder` over `AuditLog`: one service entry becomes one hash-chained row.
struct AuditLogRecorder: DecisionRecorder {
  let log: AuditLog

  func record(_ entry: AuditEntry) async throws -> Int64? {
    let record = AuditRecord(
      time: Date(timeIntervalSince1970: Double(entry.timeMilliseconds) / 1000),
      requestID: entry.requestID, client: entry.client, peer: entry.peer,
      promptSHA256: entry.promptSHA256,
      promptText: log.configuration.storePromptText ? entry.promptText : nil,
      tokens: entry.tokens, score: entry.score.map(Double.init), threshold: entry.threshold.map(Double.init),
      decision: entry.decision, featuresJSON: entry.featuresJSON, modelID: entry.modelID,
      latencyMilliseconds: entry.latencyMilliseconds, error: entry.error, shadowOf: entry.shadowOf,
      messageIndex: entry.messageIndex, role: entry.role)
    let id = try await log.append(record)
    return id == AuditLog.pendingID ? nil : id
  }

  func flush() throws {
    try log.flush()
  }
}
