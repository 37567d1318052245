import DecisionLog
import Foundation

/// `curvalid audit`: verify, read and label the SQLite audit log.
enum AuditCommand {
  static let help = """
    usage: curvalid audit verify DB [--key-file FILE]
           curvalid audit tail DB [--count N]
           curvalid audit export DB [--since TIME]
           curvalid audit summary DB [--since TIME] [--clients N]
           curvalid audit label DB ID benign|adversarial [--note TEXT] [--key-file FILE]
           curvalid audit label DB --from FILE [--key-file FILE]

    verify  recomputes the hash chain; prints the rows checked and exits 0 when intact, or names
            the first broken row and exits 1.
    tail    prints the newest N rows (default 10) as JSON lines, oldest first.
    export  prints every row (or those at or after TIME: ISO 8601 such as 2026-11-24T12:00:00Z,
            or Unix milliseconds) as JSON lines, in id order.
    summary prints one JSON object counting the decisions (or those at or after TIME): served
            accepts, rejects and reject rate, errors by code, by model, by message role, the N
            clients with the most rejects (default 10), shadow agreement and latency percentiles.
    label   marks an audited prompt as benign or adversarial for retraining (only rows whose
            prompt text was stored); --from reads JSON lines {"id":…,"label":…,"note":…}.

    --key-file FILE  the key of a log whose hash chain is keyed (`curvalid serve --audit-key-file`);
                     verify and label refuse a keyed log without it, and name a wrong key as such.

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(
      raw, options: ["since", "count", "note", "from", "key-file", "clients"], flags: [])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard let action = arguments.positional.first else {
      throw .usage(
        "audit needs an action: verify, tail, export, summary or label (see curvalid audit --help)")
    }
    guard arguments.positional.count >= 2 else { throw .usage("audit \(action) needs the database path") }
    let path = arguments.positional[1]
    guard FileManager.default.fileExists(atPath: path) else {
      throw .failure("audit database \(path) does not exist")
    }
    switch action {
    case "verify":
      try expect(arguments, count: 2, action)
      return try verify(path, key: try key(arguments))
    case "tail":
      try expect(arguments, count: 2, action)
      let count = try arguments.integer("count", default: 10, in: 1...1_000_000)
      let output = OutputWriter()
      for row in try wrap({ () throws(AuditLogError) in try AuditLog.tail(path: path, count: count) }) {
        try output.write(row.jsonLine + "\n")
      }
      try output.flush()
      return 0
    case "export":
      try expect(arguments, count: 2, action)
      let since = try arguments.value("since").map { text throws(CommandError) in try parseTime(text) }
      let output = OutputWriter()
      do {
        try AuditLog.export(path: path, since: since) { line in try output.write(line + "\n") }
        try output.flush()
      } catch let error as CommandError {
        throw error
      } catch let error as AuditLogError {
        throw .failure(error.message)
      } catch {
        throw .failure("export failed: \(error)")
      }
      return 0
    case "summary":
      try expect(arguments, count: 2, action)
      let since = try arguments.value("since").map { text throws(CommandError) in try parseTime(text) }
      let clients = try arguments.integer("clients", default: 10, in: 0...10_000)
      let summary = try wrap { () throws(AuditLogError) in
        try AuditLog.summary(path: path, since: since, clients: clients)
      }
      print(summaryJSON(summary))
      return 0
    case "label":
      return try label(arguments, path: path)
    default:
      throw .usage("unknown audit action '\(action)' (verify, tail, export, summary, label)")
    }
  }

  /// `audit summary`'s JSON object (docs/audit-log.md, "Summary"), one line.
  static func summaryJSON(_ summary: AuditSummary) -> String {
    func counts(_ c: AuditSummary.Counts) -> String {
      "{\"accept\":\(c.accept),\"reject\":\(c.reject),\"failed\":\(c.failed),\"reject_rate\":"
        + (c.rejectRate.map { JSONText.number($0) } ?? "null") + "}"
    }
    func table(_ entries: [String: AuditSummary.Counts]) -> String {
      "{"
        + entries.keys.sorted().map { "\(JSONText.string($0)):\(counts(entries[$0] ?? .init()))" }
        .joined(separator: ",") + "}"
    }
    func time(_ milliseconds: Int64?) -> String {
      milliseconds.map { JSONText.string(timestamp(milliseconds: $0)) } ?? "null"
    }
    let errors = summary.errors.keys.sorted().map { "\(JSONText.string($0)):\(summary.errors[$0] ?? 0)" }
    let clients = summary.topClients.map {
      "{\"client\":\($0.client.map(JSONText.string) ?? "null"),\"decisions\":\(counts($0.counts))}"
    }
    let agreement =
      summary.shadowCompared == 0
      ? "null" : JSONText.number(Double(summary.shadowAgreements) / Double(summary.shadowCompared))
    let latency =
      summary.latencyMilliseconds.map {
        "{\"p50\":\(JSONText.number($0.p50)),\"p90\":\(JSONText.number($0.p90)),\"p99\":\(JSONText.number($0.p99))}"
      } ?? "null"
    return "{\"rows\":\(summary.rows),\"first\":\(time(summary.firstMilliseconds)),"
      + "\"last\":\(time(summary.lastMilliseconds)),\"served\":\(counts(summary.served)),"
      + "\"errors\":{\(errors.joined(separator: ","))},\"models\":\(table(summary.models)),"
      + "\"roles\":\(table(summary.roles)),\"top_clients\":[\(clients.joined(separator: ","))],"
      + "\"shadow\":{\"rows\":\(summary.shadowRows),\"compared\":\(summary.shadowCompared),"
      + "\"agreement_rate\":\(agreement)},\"latency_ms\":\(latency)}"
  }

  /// `2026-11-24T12:00:00.123Z` for UTC milliseconds since 1970.
  private static func timestamp(milliseconds: Int64) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
  }

  private static func expect(_ arguments: Arguments, count: Int, _ action: String) throws(CommandError) {
    guard arguments.positional.count == count else {
      throw .usage("audit \(action) takes exactly the database path")
    }
  }

  private static func wrap<T>(_ body: () throws(AuditLogError) -> T) throws(CommandError) -> T {
    do {
      return try body()
    } catch {
      throw .failure(error.message)
    }
  }

  /// The chain key named by `--key-file`, if any.
  private static func key(_ arguments: Arguments) throws(CommandError) -> AuditChainKey? {
    guard let file = arguments.value("key-file") else { return nil }
    return try wrap { () throws(AuditLogError) in try AuditChainKey(contentsOfFile: file) }
  }

  private static func verify(_ path: String, key: AuditChainKey?) throws(CommandError) -> Int32 {
    let report = try wrap { () throws(AuditLogError) in try AuditLog.verify(path: path, key: key) }
    if report.isValid {
      print(
        "ok: \(report.rowsChecked) rows and \(report.checkpointsChecked) checkpoints verified; "
          + "head row \(report.headID.map(String.init) ?? "none") hash \(report.headHash)")
      return 0
    }
    let location =
      report.firstBrokenRowID.map { "row \($0)" }
      ?? report.firstBrokenCheckpointID.map { "checkpoint \($0)" } ?? "unknown row"
    printError("curvalid: audit chain broken at \(location): \(report.reason ?? "hash mismatch")")
    return 1
  }

  /// ISO 8601 (with or without fractional seconds) or Unix milliseconds.
  static func parseTime(_ text: String) throws(CommandError) -> Date {
    if let milliseconds = Int64(text) { return Date(timeIntervalSince1970: Double(milliseconds) / 1000) }
    let formatter = ISO8601DateFormatter()
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    throw .usage("--since takes ISO 8601 time (2026-11-24T12:00:00Z) or Unix milliseconds, got '\(text)'")
  }

  private static func label(_ arguments: Arguments, path: String) throws(CommandError) -> Int32 {
    var requests: [(id: Int64, label: String, note: String?)] = []
    if let file = arguments.value("from") {
      guard arguments.positional.count == 2 else {
        throw .usage("audit label --from FILE takes no ID or label")
      }
      guard let data = FileManager.default.contents(atPath: file),
        let text = String(data: data, encoding: .utf8)
      else {
        throw .failure("cannot read \(file) as UTF-8")
      }
      for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
      where !line.trimmingCharacters(in: .whitespaces).isEmpty {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
          let id = (object["id"] as? NSNumber)?.int64Value, let label = object["label"] as? String
        else {
          throw .failure(
            "\(file) line \(number + 1): expected {\"id\": N, \"label\": \"benign\"|\"adversarial\"}")
        }
        requests.append((id, label, object["note"] as? String))
      }
    } else {
      guard arguments.positional.count == 4, let id = Int64(arguments.positional[2]) else {
        throw .usage("usage: curvalid audit label DB ID benign|adversarial [--note TEXT]")
      }
      requests.append((id, arguments.positional[3], arguments.value("note")))
    }
    for request in requests where !["benign", "adversarial"].contains(request.label) {
      throw .usage("label must be benign or adversarial, got '\(request.label)' (row \(request.id))")
    }
    let chainKey = try key(arguments)
    let log = try wrap { () throws(AuditLogError) in
      try AuditLog(configuration: AuditLogConfiguration(path: path, chainKey: chainKey))
    }
    defer { log.close() }
    for request in requests {
      try wrap { () throws(AuditLogError) in
        try log.label(id: request.id, label: request.label, note: request.note)
      }
    }
    print("labelled \(requests.count) row\(requests.count == 1 ? "" : "s")")
    return 0
  }
}
