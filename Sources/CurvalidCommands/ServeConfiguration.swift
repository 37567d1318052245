import DecisionLog
import Foundation
import Serving

/// The effective settings of `curvalid serve`: defaults, then the config file, then environment
/// variables, then flags (each layer overrides the one before).
///
/// The config file is one JSON object with the snake_case keys of `FileSettings` (docs/protocol.md,
/// example in `server/curvalid.conf.example`); unknown keys are errors so typos do not pass
/// silently.
struct ServeConfiguration: Equatable {
  /// Audit durability: `durable` replies after the row commits, `async` replies at once.
  enum AuditMode: String, Equatable, CaseIterable {
    case durable
    case async
  }

  /// Everything the `Server` gets.
  var server = ServerConfiguration()
  /// The model bundle (`nil`: the default model).
  var model: String?
  /// A decision threshold in [0, 1] replacing the bundle's calibrated one (`nil`: the bundle's).
  /// It applies to every model the service loads or reloads, not to a shadow model.
  var threshold: Float?
  /// The encoder directory (`nil`: the verified default encoder).
  var encoder: String?
  /// BLAS threads per scoring worker.
  var threads = min(2, ProcessInfo.processInfo.activeProcessorCount)
  /// The audit database (`nil`: decisions are not audited, with a warning).
  var audit: String?
  /// Audit durability.
  var auditMode = AuditMode.durable
  /// The file holding the audit chain's key (`nil`: the unkeyed SHA-256 chain).
  var auditKeyFile: String?
  /// The key read from `auditKeyFile` with the configuration.
  var auditKey: AuditChainKey?
  /// Where the admin token is read from.
  var adminTokenFile: String?
  /// The config file that was read, if any.
  var configFile: String?

  /// The JSON config file's keys.
  struct FileSettings: Decodable {
    var listen: StringListSetting?
    var unixSocket: String?
    var model: String?
    var threshold: Double?
    var encoder: String?
    var threads: Int?
    var workers: Int?
    var audit: String?
    var auditMode: String?
    var auditFailure: String?
    var auditKeyFile: String?
    var storePrompts: Bool?
    var adminTokenFile: String?
    var overload: String?
    var queueCapacity: Int?
    var maxBatch: Int?
    var batchWaitMs: Double?
    var maxLineBytes: Int?
    var maxPromptChars: Int?
    var trustedRoles: StringListSetting?
    var maxConnections: Int?
    var maxPipelined: Int?
    var idleTimeoutS: Double?
    var slowSenderTimeoutS: Double?
    var drainTimeoutS: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
      case listen
      case unixSocket = "unix_socket"
      case model, threshold, encoder, threads, workers, audit
      case auditMode = "audit_mode"
      case auditFailure = "audit_failure"
      case auditKeyFile = "audit_key_file"
      case storePrompts = "store_prompts"
      case adminTokenFile = "admin_token_file"
      case overload
      case queueCapacity = "queue_capacity"
      case maxBatch = "max_batch"
      case batchWaitMs = "batch_wait_ms"
      case maxLineBytes = "max_line_bytes"
      case maxPromptChars = "max_prompt_chars"
      case trustedRoles = "trusted_roles"
      case maxConnections = "max_connections"
      case maxPipelined = "max_pipelined"
      case idleTimeoutS = "idle_timeout_s"
      case slowSenderTimeoutS = "slow_sender_timeout_s"
      case drainTimeoutS = "drain_timeout_s"
    }
  }

  /// `"listen"`: one `HOST:PORT`, a list of them, or `""`/`[]` for no TCP listener; also
  /// `"trusted_roles"`: one role, a list of them, or `""`/`[]` for none.
  struct StringListSetting: Decodable {
    /// The values, in order (empty for `""` or `[]`).
    let list: [String]

    init(from decoder: any Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let one = try? container.decode(String.self) {
        list = one.isEmpty ? [] : [one]
      } else {
        list = try container.decode([String].self)
      }
    }
  }

  /// Option names (taking a value) accepted by `curvalid serve`.
  static let optionNames: Set<String> = [
    "listen", "unix", "model", "threshold", "audit", "config", "admin-token-file", "encoder", "threads",
    "workers",
    "audit-mode", "audit-failure", "audit-key-file", "overload", "max-connections", "max-line-bytes",
    "max-prompt-chars", "trusted-roles",
    "max-pipelined", "queue-capacity", "max-batch", "batch-wait-ms", "idle-timeout", "slow-sender-timeout",
    "drain-timeout", "shadow",
  ]
  /// Flag names accepted by `curvalid serve`.
  static let flagNames: Set<String> = ["store-prompts", "check-config"]

  /// Builds the effective configuration.
  ///
  /// - Parameters:
  ///   - arguments: The parsed command line.
  ///   - environment: The process environment (`CURVALID_*`).
  /// - Throws: `CommandError.usage` for bad values anywhere, `.failure` for unreadable files.
  init(arguments: Arguments, environment: [String: String]) throws(CommandError) {
    server.tcpAddresses = [.loopbackDefault]
    let configPath =
      arguments.value("config") ?? environment["CURVALID_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
    if let configPath {
      configFile = configPath
      try apply(file: try Self.readFile(configPath))
    }
    try apply(layer: "environment variable") { (name: String) -> String? in
      let variable = "CURVALID_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
      let aliases = ["encoder": "CURVALID_ENCODER_DIR", "unix": "CURVALID_UNIX_SOCKET"]
      guard let value = environment[aliases[name] ?? variable], !value.isEmpty else { return nil }
      return value
    }
    try apply(layer: "option") { arguments.value($0).map { $0 } }
    if arguments.flag("store-prompts")
      || ["1", "true", "yes"].contains(environment["CURVALID_STORE_PROMPTS"] ?? "")
    {
      server.storePromptText = true
    }
    if let adminTokenFile { server.adminToken = try Self.readToken(adminTokenFile) }
    if let auditKeyFile {
      // Read now, so that --check-config and a bad deployment fail before anything listens.
      do {
        auditKey = try AuditChainKey(contentsOfFile: auditKeyFile)
      } catch {
        throw error.code == .open ? .failure(error.message) : .usage(error.message)
      }
    }
    do {
      try server.validate()
    } catch {
      throw .usage(error.message)
    }
  }

  /// Reads and checks a config file (one JSON object of known keys with the right types).
  ///
  /// - Throws: `CommandError.failure` for an unreadable file, `.usage` for a malformed one.
  static func readFile(_ path: String) throws(CommandError) -> FileSettings {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw .failure("cannot read config file \(path): \(error.localizedDescription)")
    }
    let keys: [String]
    do {
      guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw CommandError.usage("config file \(path) must hold one JSON object")
      }
      keys = Array(object.keys)
    } catch let error as CommandError {
      throw error
    } catch {
      throw .usage("config file \(path) is not valid JSON")
    }
    let known = Set(FileSettings.CodingKeys.allCases.map(\.rawValue))
    if let unknown = keys.sorted().first(where: { !known.contains($0) }) {
      throw .usage("config file \(path): unknown key \"\(unknown)\"")
    }
    do {
      return try JSONDecoder().decode(FileSettings.self, from: data)
    } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
      let key = context.codingPath.map(\.stringValue).joined(separator: ".")
      throw .usage("config file \(path): \"\(key)\" has the wrong type")
    } catch {
      throw .usage("config file \(path): \(error.localizedDescription)")
    }
  }

  private static func readToken(_ path: String) throws(CommandError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .failure("cannot read admin token file \(path)")
    }
    let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard token.utf8.count >= 16 else {
      throw .usage("the admin token in \(path) must have at least 16 bytes")
    }
    return token
  }

  private mutating func apply(file: FileSettings) throws(CommandError) {
    let text: [String: String?] = [
      "listen": file.listen.map { $0.list.joined(separator: ",") }, "unix": file.unixSocket,
      "model": file.model, "threshold": file.threshold.map { "\($0)" },
      "encoder": file.encoder, "audit": file.audit, "audit-mode": file.auditMode,
      "audit-failure": file.auditFailure, "audit-key-file": file.auditKeyFile,
      "admin-token-file": file.adminTokenFile, "overload": file.overload,
      "threads": file.threads.map(String.init), "workers": file.workers.map(String.init),
      "queue-capacity": file.queueCapacity.map(String.init), "max-batch": file.maxBatch.map(String.init),
      "batch-wait-ms": file.batchWaitMs.map { "\($0)" }, "max-line-bytes": file.maxLineBytes.map(String.init),
      "max-prompt-chars": file.maxPromptChars.map(String.init),
      "trusted-roles": file.trustedRoles.map { $0.list.isEmpty ? "none" : $0.list.joined(separator: ",") },
      "max-connections": file.maxConnections.map(String.init),
      "max-pipelined": file.maxPipelined.map(String.init), "idle-timeout": file.idleTimeoutS.map { "\($0)" },
      "slow-sender-timeout": file.slowSenderTimeoutS.map { "\($0)" },
      "drain-timeout": file.drainTimeoutS.map { "\($0)" },
    ]
    try apply(layer: "config key") { text[$0] ?? nil }
    if let store = file.storePrompts { server.storePromptText = store }
  }

  /// Applies every setting that `lookup` provides, as text.
  private mutating func apply(layer: String, _ lookup: (String) -> String?) throws(CommandError) {
    func integer(_ name: String, _ range: ClosedRange<Int>) throws(CommandError) -> Int? {
      guard let text = lookup(name) else { return nil }
      guard let value = Int(text), range.contains(value) else {
        throw .usage(
          "\(layer) \(name) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(text)'"
        )
      }
      return value
    }
    func seconds(_ name: String) throws(CommandError) -> Double? {
      guard let text = lookup(name) else { return nil }
      guard let value = Double(text), value.isFinite, value >= 0 else {
        throw .usage("\(layer) \(name) must be a non-negative number, got '\(text)'")
      }
      return value
    }
    func choice<Value: RawRepresentable & CaseIterable>(_ name: String, _: Value.Type) throws(CommandError)
      -> Value?
    where Value.RawValue == String {
      guard let text = lookup(name) else { return nil }
      guard let value = Value(rawValue: text) else {
        let options = Value.allCases.map(\.rawValue).joined(separator: ", ")
        throw .usage("\(layer) \(name) must be one of \(options), got '\(text)'")
      }
      return value
    }
    if let text = lookup("listen") {
      var addresses: [ListenAddress] = []
      for part in text.split(separator: ",") where part.trimmingCharacters(in: .whitespaces) != "none" {
        do {
          addresses.append(try ListenAddress(parsing: part.trimmingCharacters(in: .whitespaces)))
        } catch {
          throw .usage("\(layer) listen: \(error.message)")
        }
      }
      server.tcpAddresses = addresses
    }
    if let path = lookup("unix") { server.unixSocketPath = path == "none" ? nil : path }
    if let path = lookup("model") { model = path }
    if let text = lookup("threshold") {
      threshold = try ModelLoading.threshold(text, source: "\(layer) threshold")
    }
    if let path = lookup("encoder") { encoder = path }
    if let path = lookup("audit") { audit = path == "none" ? nil : path }
    if let path = lookup("admin-token-file") { adminTokenFile = path }
    if let path = lookup("audit-key-file") { auditKeyFile = path == "none" ? nil : path }
    if let value = try choice("audit-mode", AuditMode.self) { auditMode = value }
    if let value = try choice("audit-failure", AuditFailurePolicy.self) { server.auditFailurePolicy = value }
    if let value = try choice("overload", OverloadPolicy.self) { server.overloadPolicy = value }
    if let value = try integer("threads", 1...64) { threads = value }
    if let value = try integer("workers", 1...64) { server.workers = value }
    if let value = try integer("queue-capacity", 1...1_000_000) { server.queueCapacity = value }
    if let value = try integer("max-batch", 1...4_096) { server.maxBatchSize = value }
    if let value = try seconds("batch-wait-ms") { server.batchWaitMilliseconds = value }
    if let value = try integer("max-line-bytes", 1...(64 << 20)) { server.maxLineBytes = value }
    if let value = try integer("max-prompt-chars", ScoreSettings.promptCharsRange) {
      server.maxPromptScalars = value
    }
    if let text = lookup("trusted-roles") {
      server.trustedRoles = ServerConfiguration.trustedRoles(parsing: text)
    }
    if let value = try integer("max-connections", 1...100_000) { server.maxConnections = value }
    if let value = try integer("max-pipelined", 1...100_000) { server.maxPipelinedRequests = value }
    if let value = try seconds("idle-timeout") { server.idleTimeout = value }
    if let value = try seconds("slow-sender-timeout") { server.slowSenderTimeout = value }
    if let value = try seconds("drain-timeout") { server.drainTimeout = value }
  }

  /// The effective configuration as a JSON object (the admin token itself is never shown).
  var json: String {
    func string(_ value: String?) -> String { value.map(JSONText.string) ?? "null" }
    let listen = server.tcpAddresses.map { JSONText.string($0.description) }.joined(separator: ",")
    let members: [(String, String)] = [
      ("config_file", string(configFile)),
      ("listen", "[\(listen)]"),
      ("unix_socket", string(server.unixSocketPath)),
      ("model", string(model)),
      ("threshold", threshold.map { JSONText.number($0) } ?? "null"),
      ("encoder", string(encoder)),
      ("threads", "\(threads)"),
      ("workers", "\(server.workers)"),
      ("audit", string(audit)),
      ("audit_mode", string(auditMode.rawValue)),
      ("audit_failure", string(server.auditFailurePolicy.rawValue)),
      ("audit_key_file", string(auditKeyFile)),
      ("store_prompts", "\(server.storePromptText)"),
      ("admin_token_file", string(adminTokenFile)),
      ("admin_token_configured", "\(server.adminToken != nil)"),
      ("overload", string(server.overloadPolicy.rawValue)),
      ("queue_capacity", "\(server.queueCapacity)"),
      ("max_batch", "\(server.maxBatchSize)"),
      ("batch_wait_ms", JSONText.number(server.batchWaitMilliseconds)),
      ("max_line_bytes", "\(server.maxLineBytes)"),
      ("max_prompt_chars", "\(server.maxPromptScalars)"),
      ("trusted_roles", "[" + server.trustedRoles.sorted().map(JSONText.string).joined(separator: ",") + "]"),
      ("max_connections", "\(server.maxConnections)"),
      ("max_pipelined", "\(server.maxPipelinedRequests)"),
      ("idle_timeout_s", JSONText.number(server.idleTimeout)),
      ("slow_sender_timeout_s", JSONText.number(server.slowSenderTimeout)),
      ("drain_timeout_s", JSONText.number(server.drainTimeout)),
    ]
    return "{\n" + members.map { "  " + JSONText.string($0.0) + ": " + $0.1 }.joined(separator: ",\n")
      + "\n}\n"
  }
}
