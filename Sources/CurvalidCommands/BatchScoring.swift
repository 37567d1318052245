import Detection
import Foundation

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
  static let options: Set<String> = ["input", "output", "format", "output-format", "field", "batch"]
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
    let batchSize = try arguments.integer("batch", default: 32, in: 1...4096)
    let resume = arguments.flag("resume")
    guard !resume || outputPath != nil else { throw .usage("--resume needs --output FILE") }
    let threshold = try ModelLoading.threshold(arguments.value("threshold"))
    try EncoderOptions.applyThreads(arguments)
    let detector = try ModelLoading.loadDetector(
      bundlePath: arguments.value("model"), encoderDirectory: arguments.value("encoder"), threshold: threshold
    )

    let inputDescriptor = try open(inputPath, flags: O_RDONLY, what: "input")
    defer { if inputPath != nil { close(inputDescriptor) } }
    let outputDescriptor = try open(
      outputPath, flags: (resume ? O_RDWR : O_WRONLY | O_TRUNC) | O_CREAT, what: "output")
    defer { if outputPath != nil { close(outputDescriptor) } }

    let reader = try BatchRecordReader(
      descriptor: inputDescriptor, format: inputFormat, fieldNames: fieldNames)
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
      progress.update(records: batch.count, rejects: counts.rejects, errors: counts.errors)
    }
    progress.finish(interrupted: interrupted)
    if interrupted { return 130 }
    return progress.errors > 0 ? 1 : 0
  }

  /// Scores one micro-batch and writes its lines in input order.
  ///
  /// - Returns: How many records were rejected and how many failed.
  private static func score(
    _ batch: [BatchRecord], detector: Detector, explain: Bool, formatter: BatchResultFormatter,
    into output: OutputWriter
  ) throws(CommandError) -> (rejects: Int, errors: Int) {
    var prompts: [String] = []
    var slots: [Int?] = []
    for record in batch {
      if case .success(let prompt) = record.prompt {
        slots.append(prompts.count)
        prompts.append(prompt)
      } else {
        slots.append(nil)
      }
    }
    let clock = ContinuousClock()
    let started = clock.now
    let results = prompts.isEmpty ? [] : detector.score(prompts, explain: explain)
    let elapsed = clock.now - started
    let milliseconds =
      (Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15)
      / Double(max(prompts.count, 1))
    var rejects = 0
    var errors = 0
    for (record, slot) in zip(batch, slots) {
      let outcome: Result<Decision, BatchRecordError>
      var prompt: String?
      switch record.prompt {
      case .failure(let error):
        outcome = .failure(error)
      case .success(let text):
        prompt = text
        if let slot, results.indices.contains(slot) {
          outcome = results[slot].mapError {
            BatchRecordError(code: snakeCase($0.code.rawValue), message: $0.message)
          }
        } else {
          outcome = .failure(
            BatchRecordError(code: "internal_error", message: "the detector returned no result"))
        }
      }
      switch outcome {
      case .success(let decision): if decision.verdict == .reject { rejects += 1 }
      case .failure: errors += 1
      }
      try output.write(formatter.line(for: record, outcome: outcome, prompt: prompt, latency: milliseconds))
    }
    return (rejects, errors)
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

/// The progress bar (on a terminal) and the final summary line on standard error.
final class BatchProgress {
  private let enabled: Bool
  private let skipped: Int
  private let started = ContinuousClock.now
  private var lastDraw = ContinuousClock.now
  /// Records written in this run.
  private(set) var records = 0
  /// Records rejected in this run.
  private(set) var rejects = 0
  /// Error records in this run.
  private(set) var errors = 0

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
  func update(records count: Int, rejects newRejects: Int, errors newErrors: Int) {
    records += count
    rejects += newRejects
    errors += newErrors
    guard enabled, ContinuousClock.now - lastDraw > .milliseconds(200) else { return }
    lastDraw = .now
    let rate = Double(records) / max(seconds, 1e-9)
    FileHandle.standardError.write(
      Data(
        String(
          format: "\r\u{1B}[Kscoring: %d records (%d rejected, %d errors), %.1f prompts/s", records + skipped,
          rejects, errors, rate
        ).utf8))
  }

  /// Prints the summary line (clearing the bar first).
  func finish(interrupted: Bool) {
    if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    let rate = Double(records) / max(seconds, 1e-9)
    var line = String(
      format: "scored %d records: %d rejected, %d errors, %.1f prompts/s", records, rejects, errors, rate)
    if skipped > 0 { line += " (resumed after \(skipped) records)" }
    if interrupted { line += "; interrupted, rerun with --resume to continue" }
    printError(line)
  }
}

/// The C library's `open(2)`, named apart from `BatchScoring.open`.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
  open(path, flags, mode)
}
