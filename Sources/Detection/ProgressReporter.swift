import Foundation

/// Reports the progress of long stages (stage, done/total, rate, time left) as lines of text,
/// at most about once a second, to a sink (standard error in the command line).
///
/// Use from one thread at a time.
public final class ProgressReporter: @unchecked Sendable {
  private let sink: @Sendable (String) -> Void
  private let clock = ContinuousClock()
  private var stage = ""
  private var total = 0
  private var started = ContinuousClock.now
  private var lastReport = ContinuousClock.now
  private var lastDone = 0

  /// Creates a reporter that hands each line to `sink`.
  public init(sink: @escaping @Sendable (String) -> Void) {
    self.sink = sink
  }

  /// A reporter writing to standard error.
  public static func standardError() -> ProgressReporter {
    ProgressReporter { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
  }

  /// Starts a stage of `total` steps.
  public func begin(_ stage: String, total: Int) {
    self.stage = stage
    self.total = total
    started = clock.now
    lastReport = started
    lastDone = 0
    sink("\(stage): 0/\(total)")
  }

  /// Records that `done` steps are finished; prints when a second has passed.
  public func update(_ done: Int) {
    lastDone = done
    let now = clock.now
    guard now - lastReport >= .seconds(1) else { return }
    lastReport = now
    sink(line(done: done, now: now))
  }

  /// Ends the stage with a final line.
  public func finish() {
    sink(line(done: lastDone, now: clock.now) + " done")
  }

  /// A one-line note (stage results, summaries).
  public func note(_ text: String) {
    sink(text)
  }

  private func line(done: Int, now: ContinuousClock.Instant) -> String {
    let elapsed = Self.seconds(now - started)
    let rate = elapsed > 0 ? Double(done) / elapsed : 0
    let left = rate > 0 ? Double(total - done) / rate : 0
    return "\(stage): \(done)/\(total), \(String(format: "%.1f", rate))/s, "
      + "elapsed \(Self.format(elapsed)), left \(Self.format(left))"
  }

  static func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
  }

  private static func format(_ seconds: Double) -> String {
    let whole = Int(seconds.rounded())
    return whole >= 60 ? "\(whole / 60)m\(String(format: "%02d", whole % 60))s" : "\(whole)s"
  }
}
