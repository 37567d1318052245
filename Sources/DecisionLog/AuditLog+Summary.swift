import Foundation

/// What `AuditLog.summary(path:since:)` counts: the decisions of a log (or of its rows from a
/// given time on), for an operator's view of a period (docs/audit-log.md, "Summary").
///
/// "Served" rows are the service's own decisions (`shadow_of` is null); a shadow model's rows are
/// counted apart, by whether they agree with the row they shadow.
public struct AuditSummary: Sendable, Equatable {
  /// Accepted and rejected counts.
  public struct Counts: Sendable, Equatable {
    /// Rows whose decision is `accept`.
    public var accept = 0
    /// Rows whose decision is `reject`.
    public var reject = 0
    /// Rows without a decision (the request failed).
    public var failed = 0

    /// Counts.
    public init(accept: Int = 0, reject: Int = 0, failed: Int = 0) {
      self.accept = accept
      self.reject = reject
      self.failed = failed
    }

    /// `reject / (accept + reject)`, or `nil` without decisions.
    public var rejectRate: Double? {
      accept + reject == 0 ? nil : Double(reject) / Double(accept + reject)
    }
  }

  /// One client's counts.
  public struct Client: Sendable, Equatable {
    /// The request's `client` field (`nil`: requests without one).
    public var client: String?
    /// Its served rows' counts.
    public var counts: Counts

    /// A client's counts.
    public init(client: String?, counts: Counts) {
      self.client = client
      self.counts = counts
    }
  }

  /// Nearest-rank latency percentiles, milliseconds.
  public struct Percentiles: Sendable, Equatable {
    /// The 50th percentile.
    public var p50: Double
    /// The 90th percentile.
    public var p90: Double
    /// The 99th percentile.
    public var p99: Double
  }

  /// Rows counted (served and shadow).
  public var rows = 0
  /// The first and last counted rows' times, UTC milliseconds (`nil` without rows).
  public var firstMilliseconds: Int64?
  /// See `firstMilliseconds`.
  public var lastMilliseconds: Int64?
  /// Served rows.
  public var served = Counts()
  /// Served rows with an error code, by code (`overloaded` rows carry the overload policy's
  /// decision as well).
  public var errors: [String: Int] = [:]
  /// Served rows by model id.
  public var models: [String: Counts] = [:]
  /// Served rows of `messages` requests by role (empty for a version-1 log).
  public var roles: [String: Counts] = [:]
  /// The clients with the most rejected served rows, most first (ties: more rows first, then name).
  public var topClients: [Client] = []
  /// Shadow-model rows.
  public var shadowRows = 0
  /// Shadow rows whose decision equals the decision of the row they shadow (when that row is
  /// still in the log).
  public var shadowAgreements = 0
  /// Shadow rows whose shadowed row is still in the log.
  public var shadowCompared = 0
  /// Served rows' latency percentiles (nearest rank): 50th, 90th, 99th; `nil` without latencies.
  public var latencyMilliseconds: Percentiles?
}

extension AuditLog {
  /// Counts the log's decisions (docs/audit-log.md, "Summary"), read-only like `export`.
  ///
  /// - Parameters:
  ///   - path: The database.
  ///   - since: Only rows whose time is at or after this instant.
  ///   - clients: How many clients `topClients` lists.
  /// - Throws: `.open`, `.schema` and SQLite errors.
  /// - Complexity: A few scans of the rows in range, and a sort of their latencies.
  public static func summary(path: String, since: Date? = nil, clients: Int = 10) throws(AuditLogError)
    -> AuditSummary
  {
    let (c, version) = try openForReading(path)
    let start = since.map { Int64(($0.timeIntervalSince1970 * 1000).rounded(.up)) } ?? Int64.min
    let range = "time_ms >= ?1"
    let served = range + " AND shadow_of IS NULL"
    var summary = AuditSummary()

    try each(c, "SELECT count(*), min(time_ms), max(time_ms) FROM decisions WHERE \(range)", start) {
      summary.rows = Int($0.integer(0) ?? 0)
      summary.firstMilliseconds = $0.integer(1)
      summary.lastMilliseconds = $0.integer(2)
    }
    let counted = "decision, count(*) FROM decisions WHERE \(served)"
    try each(c, "SELECT NULL, \(counted) GROUP BY decision", start) { add($0, to: &summary.served) }
    try each(c, "SELECT model, \(counted) GROUP BY model, decision", start) {
      add($0, to: &summary.models[$0.text(0) ?? "", default: AuditSummary.Counts()])
    }
    if version >= 2 {
      try each(c, "SELECT role, \(counted) AND role IS NOT NULL GROUP BY role, decision", start) {
        add($0, to: &summary.roles[$0.text(0) ?? "", default: AuditSummary.Counts()])
      }
    }
    try each(
      c, "SELECT error, count(*) FROM decisions WHERE \(served) AND error IS NOT NULL GROUP BY error", start
    ) { summary.errors[$0.text(0) ?? "", default: 0] += Int($0.integer(1) ?? 0) }
    try each(
      c,
      "SELECT client, sum(decision IS 'accept'), sum(decision IS 'reject'), sum(decision IS NULL), count(*) "
        + "FROM decisions WHERE \(served) GROUP BY client "
        + "ORDER BY sum(decision IS 'reject') DESC, count(*) DESC, client LIMIT \(max(0, clients))", start
    ) {
      let counts = AuditSummary.Counts(
        accept: Int($0.integer(1) ?? 0), reject: Int($0.integer(2) ?? 0), failed: Int($0.integer(3) ?? 0))
      summary.topClients.append(AuditSummary.Client(client: $0.text(0), counts: counts))
    }
    try each(
      c,
      "SELECT count(*), count(p.id), sum(p.id IS NOT NULL AND s.decision IS p.decision) FROM decisions s "
        + "LEFT JOIN decisions p ON p.id = s.shadow_of WHERE s.time_ms >= ?1 AND s.shadow_of IS NOT NULL",
      start
    ) {
      summary.shadowRows = Int($0.integer(0) ?? 0)
      summary.shadowCompared = Int($0.integer(1) ?? 0)
      summary.shadowAgreements = Int($0.integer(2) ?? 0)
    }
    var latencies: [Double] = []
    try each(
      c, "SELECT latency_ms FROM decisions WHERE \(served) AND latency_ms IS NOT NULL ORDER BY latency_ms",
      start
    ) {
      switch $0.value(0) {
      case .real(let value): latencies.append(value)
      case .integer(let value): latencies.append(Double(value))
      default: break
      }
    }
    if !latencies.isEmpty {
      func rank(_ share: Double) -> Double {
        latencies[min(latencies.count - 1, max(0, Int((share * Double(latencies.count)).rounded(.up)) - 1))]
      }
      summary.latencyMilliseconds = AuditSummary.Percentiles(p50: rank(0.5), p90: rank(0.9), p99: rank(0.99))
    }
    return summary
  }

  /// Adds one `(…, decision, count)` result row to `counts`.
  private static func add(_ row: SQLiteStatement, to counts: inout AuditSummary.Counts) {
    let count = Int(row.integer(2) ?? 0)
    switch row.text(1) {
    case "accept": counts.accept += count
    case "reject": counts.reject += count
    case nil: counts.failed += count
    default: break
    }
  }

  /// Runs `sql` with `?1` bound to `start` and calls `body` with each result row.
  private static func each(
    _ c: SQLiteConnection, _ sql: String, _ start: Int64, _ body: (SQLiteStatement) -> Void
  ) throws(AuditLogError) {
    let statement = try c.statement(sql)
    defer { statement.reset() }
    try statement.bind([.integer(start)])
    while try statement.step(context: "summarise decisions") { body(statement) }
  }
}
