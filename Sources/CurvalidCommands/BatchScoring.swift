import Detection
import Foundation
import LinearAlgebra
import Serving

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// `curvalid score` without TEXT: scores a JSONL, CSV or plain-text file (or standard input) in
/// micro-batches and writes one reply per record, in input order.
///
/// Reading, scoring and writing proceed one micro-batch at a time, and the output is flushed
/// after each, so memory stays flat on any input size and an interrupted run leaves complete
/// records only (a partial last record at most, which `--resume` cuts off).
enum BatchScoring {
  /// Options that only batch mode takes.
  static let options: Set<String> = [
    "input", "output", "format", "output-format", "field", "batch", "trusted-roles", "max-prompt-chars",
  ]
  /// Flags that only batch mode takes.
  static let flags: Set<String> = ["resume"]

  /// Runs batch scoring.
  ///
  /// - Returns: 0 when every record was scored, 1 when any record failed, 130 when interrupted.
  /// - Throws: `CommandError` for usage errors and failures that stop the whole run.
  static func run(_ arguments: Arguments) throws(CommandError) -> Int32 {
    let inputPath = arguments.value("input").flatMap { $0 == "-" ? nil : $0 }
    let outputPath = arguments.value("output").flatMap { $0 == "-" ? nil : $0 }
    guard inputPath != nil || isatty(0) == 0 else {
      throw .usage("score needs TEXT, --input FILE, or prompts piped to standard input (see --help)")
    }
    let inputFormat = try BatchInputFormat.chosen(arguments.value("format"), path: inputPath)
    let outputFormat: BatchOutputFormat
    if let name = arguments.value("output-format") {
      guard let format = BatchOutputFormat(rawValue: name) else {
        throw .usage("--output-format must be jsonl or csv, got '\(name)'")
      }
      outputFormat = format
    } else {
      outputFormat = outputPath.map { $0.lowercased().hasSuffix(".csv") } == true ? .csv : .jsonl
    }
    let fieldNames = arguments.value("field").map { [$0] } ?? ["text", "prompt"]
    let settings = try ScoreSettings(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    let trustedRoles = try trustedRoles(settings, format: inputFormat, fieldNames: fieldNames)
    let batchSize = try arguments.integer("batch", default: 32, in: 1...4096)
    let resume = arguments.flag("resume")
    guard !resume || outputPath != nil else { throw .usage("--resume needs --output FILE") }
    BLAS.threadCount = settings.threads
    let detector = try ModelLoading.loadDetector(
      bundlePath: settings.model, encoderDirectory: settings.encoder, threshold: settings.threshold)

    let inputDescriptor = try open(inputPath, flags: O_RDONLY, what: "input")
    defer { if inputPath != nil { close(inputDescriptor) } }
    let outputDescriptor = try open(
      outputPath, flags: (resume ? O_RDWR : O_WRONLY | O_TRUNC) | O_CREAT, what: "output")
    defer { if outputPath != nil { close(outputDescriptor) } }

    let reader = try BatchRecordReader(
      descriptor: inputDescriptor, format: inputFormat, fieldNames: fieldNames, trustedRoles: trustedRoles,
      maxPromptScalars: settings.maxPromptChars ?? .max)
    let extraColumns =
      inputFormat == .csv
      ? reader.header.filter { !BatchRecordReader.replyFields.contains($0) } : [reader.promptFieldName]
    let formatter = BatchResultFormatter(
      format: outputFormat, modelID: detector.modelID, extraColumns: extraColumns,
      promptField: reader.promptFieldName)
    let output = OutputWriter(descriptor: outputDescriptor)

    var skip = 0
    var hasHeader = false
    if resume {
      (skip, hasHeader) = try BatchResume.prepare(descriptor: outputDescriptor, format: outputFormat)
      for _ in 0..<skip {
        guard try reader.next() != nil else { break }
      }
    }
    if !hasHeader {
      try output.write(formatter.header)
      try output.flush()
    }

    BatchInterrupt.install()
    let progress = BatchProgress(enabled: isatty(2) == 1, skipped: skip)
    var interrupted = false
    while true {
      if BatchInterrupt.requested {
        interrupted = true
        break
      }
      var batch: [BatchRecord] = []
      batch.reserveCapacity(batchSize)
      while batch.count < batchSize, let record = try reader.next() { batch.append(record) }
      if batch.isEmpty { break }
      let counts = try score(
        batch, detector: detector, explain: arguments.flag("explain"), formatter: formatter, into: output)
      try output.flush()
      progress.update(counts)
    }
    progress.finish(interrupted: interrupted)
    if interrupted { return 130 }
    return progress.total.errors > 0 ? 1 : 0
  }

  /// The roles whose messages a JSONL `messages` record does not judge: `--trusted-roles LIST`,
  /// else a non-empty `$CURVALID_TRUSTED_ROLES`, else the config file's `trusted_roles` (as `serve`
  /// takes them, `ScoreSettings`), read as `serve` reads them
  /// (`ServerConfiguration.trustedRoles(parsing:)`), else `serve`'s default.
  ///
  /// - Returns: The trusted roles for JSONL input, `nil` for CSV and text (no conversations).
  /// - Throws: `CommandError.usage` for `--trusted-roles` with CSV or text input, and for
  ///   `--field messages` with JSONL input (that field holds conversations).
  private static func trustedRoles(
    _ settings: ScoreSettings, format: BatchInputFormat, fieldNames: [String]
  ) throws(CommandError) -> Set<String>? {
    guard format == .jsonl else {
      if settings.trustedRolesFromOption {
        throw .usage("--trusted-roles is for JSONL input (messages records)")
      }
      return nil
    }
    if fieldNames.contains(BatchRecordReader.messagesField) {
      throw .usage(
        "--field cannot be '\(BatchRecordReader.messagesField)': that JSONL field holds conversations")
    }
    return settings.trustedRoles.map(ServerConfiguration.trustedRoles(parsing:))
      ?? ServerConfiguration.defaultTrustedRoles
  }

  /// Scores one micro-batch and writes its lines in input order.
  ///
  /// Every prompt and every judged message of the batch goes to the detector in one call; a
  /// conversation is then one line, rejected when any judged message is, and failed (with the
  /// first failing message's error, `messages[i]: …`) when the detector fails on any.
  ///
  /// - Returns: What the batch adds to the summary.
  private static func score(
    _ batch: [BatchRecord], detector: Detector, explain: Bool, formatter: BatchResultFormatter,
    into output: OutputWriter
  ) throws(CommandError) -> BatchCounts {
    var texts: [String] = []
    var slots: [Range<Int>] = []
    for record in batch {
      let start = texts.count
      switch record.input {
      case .success(.prompt(let prompt)): texts.append(prompt)
      case .success(.conversation(let messages)): texts += messages.map(\.text)
      case .failure: break
      }
      slots.append(start..<texts.count)
    }
    let clock = ContinuousClock()
    let started = clock.now
    let results = texts.isEmpty ? [] : detector.score(texts, explain: explain)
    let elapsed = clock.now - started
    let milliseconds =
      (Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15)
      / Double(max(texts.count, 1))
    var counts = BatchCounts(records: batch.count)
    for (record, slot) in zip(batch, slots) {
      let outcome = outcome(
        of: record, results: slot.map { results.indices.contains($0) ? results[$0] : nil })
      switch outcome {
      case .success(let scored) where scored.rejected: counts.rejects += 1
      case .success: break
      case .failure: counts.errors += 1
      }
      counts.prompts += max(slot.count, 1)
      if case .success(.conversation) = record.input {
        counts.conversations.records += 1
        counts.conversations.messages += slot.count
      }
      try output.write(formatter.line(for: record, outcome: outcome, latency: milliseconds))
    }
    return counts
  }

  /// One record's outcome from the detector's results for its prompt or judged messages, in
  /// order (`nil` where the detector returned none).
  private static func outcome(
    of record: BatchRecord, results: [Result<Decision, DetectionError>?]
  ) -> Result<BatchOutcome, BatchRecordError> {
    let missing = BatchRecordError(code: "internal_error", message: "the detector returned no result")
    func recordError(_ error: DetectionError, _ prefix: String) -> BatchRecordError {
      BatchRecordError(code: snakeCase(error.code.rawValue), message: prefix + error.message)
    }
    switch record.input {
    case .failure(let error):
      return .failure(error)
    case .success(.prompt):
      guard results.count == 1, let result = results[0] else { return .failure(missing) }
      return result.map(BatchOutcome.init(prompt:)).mapError { recordError($0, "") }
    case .success(.conversation(let messages)):
      guard results.count == messages.count else { return .failure(missing) }
      var judged: [(message: JudgedMessage, decision: Decision)] = []
      for (message, result) in zip(messages, results) {
        switch result {
        case nil: return .failure(missing)
        case .failure(let error)?: return .failure(recordError(error, "messages[\(message.index)]: "))
        case .success(let decision)?: judged.append((message, decision))
        }
      }
      guard let scored = BatchOutcome(conversation: judged) else { return .failure(missing) }
      return .success(scored)
    }
  }

  /// `emptyPrompt` → `empty_prompt`.
  static func snakeCase(_ name: String) -> String {
    var result = ""
    for character in name {
      if character.isUppercase {
        result += "_" + character.lowercased()
      } else {
        result.append(character)
      }
    }
    return result
  }

  /// Opens `path` (or returns standard input/output for `nil`).
  private static func open(_ path: String?, flags: Int32, what: String) throws(CommandError) -> Int32 {
    guard let path else { return what == "input" ? 0 : 1 }
    while true {
      let descriptor = systemOpen(path, flags, 0o644)
      if descriptor >= 0 { return descriptor }
      if errno == EINTR { continue }
      throw .failure("cannot open \(what) \(path): \(String(cString: strerror(errno)))")
    }
  }
}

/// Counts for the summary: of one micro-batch, or of the whole run.
struct BatchCounts {
  /// Records written.
  var records = 0
  /// Records rejected (a conversation counts once, however many of its messages are).
  var rejects = 0
  /// Error records.
  var errors = 0
  /// Prompts scored: one per record, or a conversation's judged messages.
  var prompts = 0
  /// Conversation records whose messages were read (`messages` records that are not errors of
  /// shape or count), and the messages judged in them.
  var conversations = (records: 0, messages: 0)

  /// Adds `other`'s counts.
  mutating func add(_ other: BatchCounts) {
    records += other.records
    rejects += other.rejects
    errors += other.errors
    prompts += other.prompts
    conversations.records += other.conversations.records
    conversations.messages += other.conversations.messages
  }
}

/// The progress bar (on a terminal) and the final summary line on standard error.
final class BatchProgress {
  private let enabled: Bool
  private let skipped: Int
  private let started = ContinuousClock.now
  private var lastDraw = ContinuousClock.now
  /// The counts of this run (not of the records resumed over).
  private(set) var total = BatchCounts()

  /// A progress reporter; `enabled` draws the bar, `skipped` is the records resumed over.
  init(enabled: Bool, skipped: Int) {
    self.enabled = enabled
    self.skipped = skipped
  }

  private var seconds: Double {
    let elapsed = ContinuousClock.now - started
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
  }

  /// Counts one micro-batch and redraws the bar at most every 0.2 s.
  func update(_ counts: BatchCounts) {
    total.add(counts)
    guard enabled, ContinuousClock.now - lastDraw > .milliseconds(200) else { return }
    lastDraw = .now
    let rate = Double(total.prompts) / max(seconds, 1e-9)
    FileHandle.standardError.write(
      Data(
        String(
          format: "\r\u{1B}[Kscoring: %d records (%d rejected, %d errors), %.1f prompts/s",
          total.records + skipped, total.rejects, total.errors, rate
        ).utf8))
  }

  /// Prints the summary line (clearing the bar first).
  ///
  /// `scored N records: R rejected, E errors, P prompts/s`, where a conversation is one record
  /// (rejected or failed as a whole) and each of its judged messages one prompt; with conversations,
  /// `scored N records (C conversations, M messages judged): …`.
  func finish(interrupted: Bool) {
    if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    let rate = Double(total.prompts) / max(seconds, 1e-9)
    let (conversations, messages) = total.conversations
    func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
    let judged =
      conversations > 0
      ? " (\(count(conversations, "conversation")), \(count(messages, "message")) judged)" : ""
    var line =
      "scored \(total.records) records\(judged): "
      + String(format: "%d rejected, %d errors, %.1f prompts/s", total.rejects, total.errors, rate)
    if skipped > 0 { line += " (resumed after \(skipped) records)" }
    if interrupted { line += "; interrupted, rerun with --resume to continue" }
    printError(line)
  }
}

/// The C library's `open(2)`, named apart from `BatchScoring.open`.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
  open(path, flags, mode)
}
