import Detection
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// `curvalid model calibrate`: a bundle's threshold set again for a deployment's target FPR, on the
/// deployment's own benign prompts, and stored in a new bundle.
extension ModelCommand {
  /// The options `model calibrate` takes besides the encoder's.
  static let calibrateOptions: Set<String> = ["benign", "target-fpr", "output", "format", "field"]

  /// Prompts per scoring call.
  private static let calibrationBatch = 32

  /// The keys `model calibrate` adds to a bundle's evaluation summary (and `model inspect` reads).
  enum SummaryKey {
    /// The target FPR of the last calibration.
    static let target = "calibration_target_fpr"
    /// How many benign prompts it was set on.
    static let prompts = "calibration_prompts"
    /// The share of them the new threshold rejects.
    static let reached = "calibration_reached_fpr"
    /// The threshold the bundle was trained with (kept through later calibrations).
    static let trainedThreshold = "trained_threshold"
  }

  /// What a calibration found.
  struct Calibration: Equatable {
    /// The new threshold.
    let threshold: Float
    /// Benign prompts scored.
    let prompts: Int
    /// How many of them the new threshold rejects (at most `⌊target · prompts⌋`).
    let flagged: Int
  }

  /// Refuses a sample too small for `target` to allow one rejection (`⌊target · count⌋ = 0`).
  ///
  /// - Throws: `CommandError.failure` for an empty sample or one smaller than `1 / target`.
  static func checkSampleSize(_ count: Int, target: Double, source: String) throws(CommandError) {
    guard count > 0 else { throw .failure("\(source) holds no prompts to calibrate on") }
    guard Int((target * Double(count) + 1e-9).rounded(.down)) >= 1 else {
      throw .failure(
        "a \(percent(target)) target needs at least \(Int((1 / target).rounded(.up))) benign prompts "
          + "(so that one may be rejected); \(source) holds \(count)")
    }
  }

  /// The threshold for `target` on the decision scores of benign prompts (`Metrics.threshold`:
  /// the smallest that rejects at most `⌊target · n⌋` of them), refusing a sample too small for
  /// the target to allow one rejection.
  ///
  /// - Throws: `CommandError.failure` for an empty sample or one smaller than `1 / target`.
  static func calibration(scores: [Float], target: Double, source: String) throws(CommandError) -> Calibration
  {
    try checkSampleSize(scores.count, target: target, source: source)
    let threshold: Float
    do {
      threshold = try Metrics.threshold(forBenignScores: scores, targetFalsePositiveRate: target)
    } catch {
      throw .failure("calibration failed: \(error)")
    }
    return Calibration(
      threshold: threshold, prompts: scores.count, flagged: scores.filter { $0 >= threshold }.count)
  }

  /// Runs `model calibrate BUNDLE --benign FILE --target-fpr R --output NEW`.
  ///
  /// Every record of the sample must be a prompt the detector scores: a bad record (invalid JSON
  /// or UTF-8, a missing field, an empty prompt, one the detector cannot score) stops the run with
  /// its line, since a threshold set on part of a sample would not say which part. Records are
  /// checked and counted in a first pass, before the model is loaded.
  ///
  /// - Returns: 0 when the new bundle is written.
  /// - Throws: `CommandError.usage` for missing or malformed options, `.failure` otherwise.
  static func calibrate(_ path: String, arguments: Arguments) throws(CommandError) -> Int32 {
    guard let benignPath = arguments.value("benign") else {
      throw .usage("model calibrate needs --benign FILE: prompts of your own benign traffic")
    }
    guard let targetText = arguments.value("target-fpr") else {
      throw .usage(
        "model calibrate needs --target-fpr R, the benign false-positive rate to allow (e.g. 0.005)")
    }
    guard let target = Double(targetText), target > 0, target < 1 else {
      throw .usage("--target-fpr must be a rate between 0 and 1 (e.g. 0.005 for 0.5%), got '\(targetText)'")
    }
    guard let outputPath = arguments.value("output") else {
      throw .usage("model calibrate needs --output FILE for the new bundle")
    }
    let bundleURL = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath()
    let outputURL = URL(fileURLWithPath: outputPath).standardizedFileURL
    guard bundleURL.path != outputURL.resolvingSymlinksInPath().path else {
      throw .usage(
        "--output must differ from the bundle: calibrate writes a new bundle and keeps the original")
    }
    let format = try BatchInputFormat.chosen(arguments.value("format"), path: benignPath)
    let fieldNames = arguments.value("field").map { [$0] } ?? ["text", "prompt"]
    // `-` is standard input, kept in a temporary file for the two passes.
    let sampleName = benignPath == "-" ? "standard input" : benignPath
    let spooled = benignPath == "-" ? try spoolStandardInput() : nil
    defer { if let spooled { try? FileManager.default.removeItem(at: spooled) } }
    let samplePath = spooled?.path ?? benignPath
    // A first pass checks every record and the sample's size before any model is loaded.
    var count = 0
    try forEachPrompts(in: samplePath, name: sampleName, format: format, fieldNames: fieldNames) {
      count += $0.count
    }
    try checkSampleSize(count, target: target, source: sampleName)
    try EncoderOptions.applyThreads(arguments)
    let detector = try ModelLoading.loadDetector(
      bundlePath: path, encoderDirectory: arguments.value("encoder"))
    let bundle = detector.bundle
    var scores: [Float] = []
    try forEachPrompts(in: samplePath, name: sampleName, format: format, fieldNames: fieldNames) {
      (records) throws(CommandError) in
      for (record, result) in zip(records, detector.score(records.map(\.prompt), explain: false)) {
        switch result {
        case .success(let decision): scores.append(decision.score)
        case .failure(let error): throw refusal(sampleName, line: record.line, error.message)
        }
      }
    }
    let found = try calibration(scores: scores, target: target, source: sampleName)

    var evaluation = bundle.evaluation
    // The first training threshold stays recorded however often a bundle is calibrated again.
    evaluation[SummaryKey.trainedThreshold] =
      bundle.evaluation[SummaryKey.trainedThreshold] ?? Double(bundle.threshold)
    evaluation[SummaryKey.target] = target
    evaluation[SummaryKey.prompts] = Double(found.prompts)
    evaluation[SummaryKey.reached] = Double(found.flagged) / Double(found.prompts)
    let calibrated = ModelBundle(
      model: bundle.model, threshold: found.threshold, encoderName: bundle.encoderName,
      encoderSHA256: bundle.encoderSHA256, corpusDigest: bundle.corpusDigest,
      trainingCounts: bundle.trainingCounts, evaluation: evaluation, topicCentroids: bundle.topicCentroids,
      tool: bundle.tool)
    let modelID: String
    do {
      try calibrated.write(to: outputURL)
      modelID = try ModelBundle.modelID(of: outputURL)
    } catch {
      throw .failure(error.message)
    }
    let output = OutputWriter()
    if arguments.flag("json") {
      try output.write(
        "{\"model_id\":\(JSONText.string(modelID)),\"path\":\(JSONText.string(outputPath)),"
          + "\"threshold\":\(JSONText.number(found.threshold)),"
          + "\"previous_threshold\":\(JSONText.number(bundle.threshold)),\"target_fpr\":\(target),"
          + "\"prompts\":\(found.prompts),\"flagged\":\(found.flagged)}\n")
    } else {
      try output.write(
        "model \(modelID)  (\(outputPath))\n"
          + "threshold \(found.threshold) (was \(bundle.threshold)) at a \(percent(target)) target FPR on "
          + "\(found.prompts) benign prompts of \(sampleName): \(found.flagged) rejected "
          + "(\(percent(Double(found.flagged) / Double(found.prompts))))\n")
    }
    try output.flush()
    if found.flagged < 10 {
      printError(
        "note: the threshold rests on \(found.flagged) rejected prompt(s); with fewer than 10 the rate it "
          + "reaches on other benign traffic can be far from the target (use at least "
          + "\(Int((10 / target).rounded(.up))) prompts)")
    }
    return 0
  }

  /// The refusal of a sample record that is not a prompt.
  private static func refusal(_ path: String, line: Int, _ message: String) -> CommandError {
    .failure(
      "\(path) line \(line): \(message); every record of the sample must be a prompt (fix or remove it)")
  }

  /// Copies standard input to a new temporary file (the sample is read twice), which the caller
  /// removes.
  ///
  /// - Returns: The file's URL.
  /// - Throws: `CommandError.failure` when standard input cannot be read or the file written.
  private static func spoolStandardInput() throws(CommandError) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "curvalid-calibrate-\(getpid())-\(UUID().uuidString).sample")
    let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard descriptor >= 0 else {
      throw .failure("cannot keep standard input in \(url.path): \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
      if count == 0 { return url }
      if count < 0 {
        if errno == EINTR { continue }
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: url)
        throw .failure("cannot read standard input: \(reason)")
      }
      var written = 0
      while written < count {
        let result = buffer.withUnsafeBytes {
          write(descriptor, $0.baseAddress.map { $0 + written }, count - written)
        }
        if result < 0 {
          if errno == EINTR { continue }
          let reason = String(cString: strerror(errno))
          try? FileManager.default.removeItem(at: url)
          throw .failure("cannot keep standard input in \(url.path): \(reason)")
        }
        written += result
      }
    }
  }

  /// Reads a benign sample in batches of `calibrationBatch` prompts, in order, and hands each batch
  /// to `body`; `name` names it in refusals.
  ///
  /// - Throws: `CommandError.failure` when the file cannot be read or a record is not a prompt
  ///   (invalid JSON or UTF-8, a missing field, an empty prompt), with its line; what `body` throws.
  private static func forEachPrompts(
    in path: String, name: String, format: BatchInputFormat, fieldNames: [String],
    _ body: ([(line: Int, prompt: String)]) throws(CommandError) -> Void
  ) throws(CommandError) {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else {
      throw .failure("cannot open the benign sample \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    let reader = try BatchRecordReader(descriptor: descriptor, format: format, fieldNames: fieldNames)
    while true {
      var records: [(line: Int, prompt: String)] = []
      while records.count < calibrationBatch, let record = try reader.next() {
        switch record.input {
        case .success(.prompt(let prompt)) where prompt.allSatisfy(\.isWhitespace):
          throw refusal(name, line: record.line, "the prompt is empty")
        case .success(.prompt(let prompt)): records.append((record.line, prompt))
        case .success(.conversation):
          // The reader is opened without trusted roles, so it reads no conversations.
          throw refusal(name, line: record.line, "a conversation, not a prompt")
        case .failure(let error): throw refusal(name, line: record.line, error.message)
        }
      }
      if records.isEmpty { return }
      try body(records)
    }
  }

  /// A rate as a percentage with up to two decimals (`0.5%`, `1%`, `0.25%`).
  static func percent(_ rate: Double) -> String {
    var text = String(format: "%.2f", rate * 100)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
    return text + "%"
  }
}
