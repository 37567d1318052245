import Foundation

/// A TCP address to listen on: a host (IPv4, IPv6 or name) and a port.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
  /// The host as written: `127.0.0.1`, `::1`, `localhost`, `0.0.0.0` (all interfaces, explicit).
  public var host: String
  /// The port; 0 lets the system choose (tests).
  public var port: Int

  /// Creates an address.
  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// The default: loopback only, port 7433.
  public static let loopbackDefault = ListenAddress(host: "127.0.0.1", port: 7433)

  /// Parses `HOST:PORT` or `[IPV6]:PORT`.
  ///
  /// - Throws: `ServingError.invalidConfiguration` when the text is not of that form or the port is
  ///   outside 0…65535.
  public init(parsing text: String) throws(ServingError) {
    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
        throw ServingError(.invalidConfiguration, "listen address '\(text)' is not [IPV6]:PORT")
      }
      host = text[text.index(after: text.startIndex)..<close]
      portText = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":") else {
        throw ServingError(.invalidConfiguration, "listen address '\(text)' is not HOST:PORT")
      }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
      if host.contains(":") {
        throw ServingError(
          .invalidConfiguration, "write IPv6 listen addresses as [ADDRESS]:PORT, got '\(text)'")
      }
    }
    guard !host.isEmpty else {
      throw ServingError(
        .invalidConfiguration, "listen address '\(text)' has no host (use 127.0.0.1 or 0.0.0.0)")
    }
    guard let port = Int(portText), (0...65535).contains(port) else {
      throw ServingError(.invalidConfiguration, "listen address '\(text)' has no port from 0 to 65535")
    }
    self.host = String(host)
    self.port = port
  }

  /// `HOST:PORT`, with brackets around IPv6 hosts.
  public var description: String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }
}

/// What the service answers when the scoring queue is full.
public enum OverloadPolicy: String, Sendable, Equatable, CaseIterable {
  /// Answer `reject` at once, marked `"overloaded": true`.
  case failClosed = "fail_closed"
  /// Answer `accept` at once, marked `"overloaded": true`.
  case failOpen = "fail_open"
}

/// What the service answers when the audit recorder fails to record a decision.
public enum AuditFailurePolicy: String, Sendable, Equatable, CaseIterable {
  /// Reply with error `internal`, message "decision not audited".
  case failClosed = "fail_closed"
  /// Reply with the decision, marked `"audited": false`.
  case `continue` = "continue"
}

/// Everything `Server` needs besides the scorer, the recorder and the model loader.
///
/// Defaults are safe for a loopback service on a 2-core machine. `validate()` checks the ranges.
public struct ServerConfiguration: Sendable, Equatable {
  /// TCP listeners (default: `127.0.0.1:7433`). Empty: no TCP listener.
  public var tcpAddresses: [ListenAddress] = [.loopbackDefault]
  /// A Unix socket path, created mode 0600; `nil`: none.
  public var unixSocketPath: String?

  /// The longest accepted request line in bytes, without its newline (default 1 MiB).
  public var maxLineBytes = 1 << 20
  /// The longest accepted prompt in Unicode scalars (default 32,768).
  public var maxPromptScalars = 32_768
  /// Roles (lower case) whose messages a `messages` request does not judge: by default the
  /// operator's (`system`, `developer`) and the model's own (`assistant`). A service whose clients
  /// write the whole conversation themselves should judge every role (an empty set).
  public var trustedRoles: Set<String> = ServerConfiguration.defaultTrustedRoles
  /// Open connections at most; further connections get one `overloaded` error line and are closed.
  public var maxConnections = 1_024
  /// A connection with nothing pending and nothing received for this long is closed (seconds).
  public var idleTimeout: Double = 300
  /// A request line must be complete this long after its first byte arrived (seconds); otherwise
  /// the connection gets a `timeout` error line and is closed.
  public var slowSenderTimeout: Double = 10
  /// Requests of one connection awaiting their replies at most; beyond this the service stops
  /// reading from the connection until replies have been written (back-pressure, no error).
  public var maxPipelinedRequests = 128

  /// Requests waiting for a scoring worker at most; beyond this the overload policy answers.
  public var queueCapacity = 256
  /// Scoring worker threads (default 1: one batch at a time, BLAS uses the cores).
  public var workers = 1
  /// The largest micro-batch handed to one `score` call.
  public var maxBatchSize = 16
  /// How long a worker waits for more requests before scoring a partial batch (milliseconds).
  ///
  /// Default 0: a worker takes whatever is waiting, so batches form by themselves under load
  /// (requests that arrive while a batch is scored make up the next one) and an idle service adds
  /// no delay. A positive wait trades latency at low load for fuller batches.
  public var batchWaitMilliseconds: Double = 0
  /// The answer when the queue is full.
  public var overloadPolicy = OverloadPolicy.failClosed
  /// The answer when the recorder fails.
  public var auditFailurePolicy = AuditFailurePolicy.failClosed

  /// How long `stop()` waits for in-flight requests before closing connections (seconds).
  public var drainTimeout: Double = 30
  /// Whether audit entries carry the prompt text (default: only its SHA-256).
  public var storePromptText = false
  /// The admin token for `reload`; `nil` disables admin operations (they answer `unauthorized`).
  public var adminToken: String?
  /// The product version reported by `{"op":"version"}`.
  public var serviceVersion = "0.0.0"

  /// The defaults.
  public init() {}

  /// The default `trustedRoles`: `system`, `developer` and `assistant`.
  package static let defaultTrustedRoles: Set<String> = ["system", "developer", "assistant"]

  /// The roles a `--trusted-roles` list names: comma-separated, each trimmed and lower-cased;
  /// `none` and empty items name no role, so `none` (or `""`) trusts no role and every message is
  /// judged. Shared by `serve` and `score` so that both read the option alike.
  ///
  /// - Parameter list: The option's text, e.g. `system,developer` or `none`.
  /// - Returns: The trusted roles, in lower case.
  package static func trustedRoles(parsing list: String) -> Set<String> {
    let roles = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    return Set(roles.filter { !$0.isEmpty && $0 != "none" })
  }

  /// Checks every field's range.
  ///
  /// - Throws: `ServingError.invalidConfiguration` naming the first bad field.
  public func validate() throws(ServingError) {
    func require(_ condition: Bool, _ message: String) throws(ServingError) {
      if !condition { throw ServingError(.invalidConfiguration, message) }
    }
    try require(
      !tcpAddresses.isEmpty || unixSocketPath != nil, "no listener: give a TCP address or a Unix socket")
    try require((1...(64 << 20)).contains(maxLineBytes), "max_line_bytes must be from 1 to 67108864")
    try require(maxPromptScalars >= 1, "max_prompt_chars must be at least 1")
    try require((1...100_000).contains(maxConnections), "max_connections must be from 1 to 100000")
    try require(idleTimeout > 0, "idle_timeout_s must be positive")
    try require(slowSenderTimeout > 0, "slow_sender_timeout_s must be positive")
    try require((1...100_000).contains(maxPipelinedRequests), "max_pipelined must be from 1 to 100000")
    try require((1...1_000_000).contains(queueCapacity), "queue_capacity must be from 1 to 1000000")
    try require((1...64).contains(workers), "workers must be from 1 to 64")
    try require((1...4_096).contains(maxBatchSize), "max_batch must be from 1 to 4096")
    try require(
      batchWaitMilliseconds >= 0 && batchWaitMilliseconds <= 1_000, "batch_wait_ms must be from 0 to 1000")
    try require(drainTimeout >= 0, "drain_timeout_s must not be negative")
    if let path = unixSocketPath {
      try require(!path.isEmpty && path.utf8.count < 104, "unix socket path must have 1 to 103 bytes")
    }
    if let token = adminToken {
      try require(token.utf8.count >= 16, "the admin token must have at least 16 bytes")
    }
  }
}
