import DecisionLog
import Detection
import Foundation
import LinearAlgebra
import Serving

/// `curvalid serve`: the detection service over line-delimited JSON (docs/protocol.md).
enum ServeCommand {
  static let help = """
    usage: curvalid serve [OPTIONS]

    Serves the detector over line-delimited JSON on TCP (default 127.0.0.1:7433) and/or a Unix
    socket. Protocol, error codes, limits and stats: docs/protocol.md. Settings come from defaults,
    then --config FILE (JSON), then CURVALID_* environment variables, then these options.

    listeners:
      --listen HOST:PORT[,…]   TCP addresses; 'none' for no TCP (default 127.0.0.1:7433; all
                               interfaces only when asked, e.g. 0.0.0.0:7433)
      --unix PATH              Unix socket, created mode 0600 (a stale socket file is replaced)
    model:
      --model BUNDLE           model bundle (default: the default model)
      --threshold T            reject at scores ≥ T (0 to 1) instead of the bundle's calibrated threshold,
                               for another false-positive rate (docs/evaluation.md, "Operating
                               points"); kept across reloads; the shadow model keeps its own
      --shadow BUNDLE          shadow mode: a candidate that scores every request after its reply
                               (never delaying it); both decisions are audited, `stats` reports the
                               agreement rate. Promote it by copying it over --model and `reload`.
      --encoder DIR            encoder directory (default: $CURVALID_ENCODER_DIR or the cache)
      --threads N              BLAS threads per scoring worker (default 2)
      --workers N              scoring workers (default 1; keep workers × threads ≤ cores)
    audit:
      --audit DB               SQLite audit log (without it decisions are not audited)
      --audit-mode MODE        durable (reply after commit, default) or async
      --audit-failure POLICY   fail_closed (reply error 'internal', default) or continue
      --store-prompts          store prompt text in the audit log (default: SHA-256 only)
      --audit-key-file FILE    key the audit log's hash chain with the secret in FILE (mode 0600,
                               at least 16 bytes): only the key's holder can recompute the chain,
                               and the log then opens and verifies only with that key
    admin and load:
      --admin-token-file FILE  token for {"op":"reload"} (at least 16 bytes); none: reload disabled
      --overload POLICY        full queue: fail_closed (reject, default) or fail_open (accept)
      --queue-capacity N       waiting requests before the overload policy answers (default 256)
      --max-batch N            prompts per scoring call (default 16)
      --batch-wait-ms MS       wait to fill a batch (default 0: batches form under load)
    limits:
      --max-line-bytes N       longest request line (default 1048576)
      --max-prompt-chars N     longest prompt in Unicode scalars (default 32768)
    messages requests:
      --trusted-roles LIST     roles whose messages are not judged (default
                               system,developer,assistant; none: judge every message, for
                               clients that write the whole conversation themselves)
      --max-connections N      open connections (default 1024)
      --max-pipelined N        unanswered requests per connection (default 128)
      --idle-timeout S         close idle connections after S seconds (default 300)
      --slow-sender-timeout S  a request line must arrive within S seconds (default 10)
      --drain-timeout S        on SIGTERM, wait at most S seconds for in-flight requests (default 30)
    other:
      --config FILE            JSON config file (example: server/curvalid.conf.example)
      --check-config           validate and print the effective configuration, then exit

    Environment: CURVALID_CONFIG, CURVALID_LISTEN, CURVALID_UNIX_SOCKET, CURVALID_MODEL,
    CURVALID_ENCODER_DIR, CURVALID_THREADS, CURVALID_WORKERS, CURVALID_AUDIT, CURVALID_AUDIT_MODE,
    CURVALID_AUDIT_FAILURE, CURVALID_STORE_PROMPTS, CURVALID_ADMIN_TOKEN_FILE, CURVALID_OVERLOAD, and
    CURVALID_<OPTION> (upper case, '_' for '-') for the other options.
    Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the model.

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(
      raw, options: ServeConfiguration.optionNames, flags: ServeConfiguration.flagNames)
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard arguments.positional.isEmpty else {
      throw .usage("serve takes no positional arguments, got '\(arguments.positional[0])'")
    }
    var settings = try ServeConfiguration(
      arguments: arguments, environment: ProcessInfo.processInfo.environment)
    settings.server.serviceVersion = CurvalidCLI.version
    if arguments.flag("check-config") {
      try OutputWriter().writeAll(settings.json)
      return 0
    }
    if settings.server.workers * settings.threads > ProcessInfo.processInfo.activeProcessorCount {
      printError(
        "curvalid: warning: \(settings.server.workers) workers × \(settings.threads) BLAS threads exceed "
          + "\(ProcessInfo.processInfo.activeProcessorCount) cores (oversubscription)")
    }
    BLAS.threadCount = settings.threads

    let model = settings.model
    let encoder = settings.encoder
    let threshold = settings.threshold
    let scorer = try ModelLoading.loadDetector(
      bundlePath: model, encoderDirectory: encoder, threshold: threshold)
    let shadow = try arguments.value("shadow").map { path throws(CommandError) in
      try ModelLoading.loadDetector(bundlePath: path, sharingEncoderOf: scorer)
    }
    var recorder: AuditLogRecorder?
    if let audit = settings.audit {
      let opened = try AuditRecorderFactory.open(
        path: audit, durable: settings.auditMode == .durable,
        storePromptText: settings.server.storePromptText,
        key: settings.auditKey)
      if let version = opened.log.upgradedFromSchemaVersion {
        printError(
          "curvalid: upgraded audit log \(audit) from schema version \(version) to \(AuditLog.schemaVersion); "
            + "its rows and hashes are unchanged, older curvalid builds can no longer open it")
      }
      recorder = opened
    } else {
      printError("curvalid: warning: no --audit database: decisions are not audited")
    }
    let server: Server
    do {
      server = try Server(
        configuration: settings.server, scorer: scorer, recorder: recorder,
        loader: {
          try ModelLoading.loadDetector(bundlePath: model, encoderDirectory: encoder, threshold: threshold)
        },
        shadow: shadow)
      try server.start()
    } catch {
      throw .failure(error.message)
    }
    let signals = ServerSignals.install(for: server) { printError("curvalid: \($0)") }
    defer { signals.cancel() }
    let tcp = zip(settings.server.tcpAddresses, server.tcpPorts).map { "\($0.0.host):\($0.1)" }
    let places = tcp + (settings.server.unixSocketPath.map { ["unix:" + $0] } ?? [])
    printError(
      "curvalid: serving model \(server.modelID) on \(places.joined(separator: ", "))"
        + (scorer.thresholdOverridden
          ? " (threshold \(scorer.threshold), not the bundle's \(scorer.bundle.threshold))" : "")
        + (shadow.map { " (shadow model \($0.modelID))" } ?? ""))
    do {
      try server.waitUntilStopped()
    } catch {
      throw .failure(error.message)
    }
    // The server has flushed the log; closing it checkpoints the WAL into the database file, so a
    // stopped service leaves one self-contained file behind.
    recorder?.log.close()
    printError("curvalid: stopped")
    return 0
  }
}

extension OutputWriter {
  /// Writes `text` and flushes.
  func writeAll(_ text: String) throws(CommandError) {
    try write(text)
    try flush()
  }
}
