import Detection
import Embeddings
import Foundation

/// `curvalid evaluate`: metrics of a model on a corpus, per family and source, and
/// leave-one-family-out comparisons of presets.
enum EvaluateCommand {
  static let help = """
    usage: curvalid evaluate --corpus FILE [--corpus FILE…] [OPTIONS]

    modes:
      --mode test   (default) score the corpus's test split with --model (default: the shipped
                    model) and report accuracy, precision, recall, F1, ROC-AUC and TPR/FPR at the
                    model's threshold, overall, per family and per source, plus a length-matched
                    subset (attacks and benign prompts of similar token counts). A file of
                    {"text":…,"label":"benign"|"adversarial"} lines is scored whole: a record
                    without "split" counts as test, without "family" its label names the family.
      --mode lofo   leave-one-family-out: for every attack family F, train without F (and without
                    the test split), then score F and the benign test records at the retrained
                    model's own calibrated threshold. Trains one model per family and preset.

    options:
      --model BUNDLE       model for --mode test (default: $CURVALID_MODEL or server/models/default.safetensors)
      --threshold T        --mode test: decide at T (0 to 1) instead of the bundle's threshold, to
                           measure another operating point
      --preset LIST        presets for --mode lofo, comma-separated (default: reference); several
                           presets print a side-by-side comparison
      --set KEY=VALUE      configuration override for --mode lofo (repeatable)
      --families LIST      only these attack families (lofo)
      --length-bins N      token-count bins for length matching (default 6)
      --include-harmful    count `harmful` records as attacks (default: left out)
      --json               print the report as JSON instead of tables
      --plots DIR          write SVG figures (ROC with the operating point, score and feature
                           distributions per family) into DIR
      --cache-dir DIR      embedding cache (default: the one `train` uses)
      --no-cache           --mode test: compute every prompt's rows afresh in full precision, as
                           `score` and `serve` do, and write nothing to the cache (for files whose
                           text must not be kept; the cache's half-precision rows move scores by
                           up to about 1e-3)
    \(EncoderOptions.help)
      -h, --help           show this help

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    var remaining = raw
    let corpora = try TrainCommand.extract("corpus", from: &remaining)
    let overrides = try TrainCommand.extract("set", from: &remaining)
    let arguments = try Arguments(
      remaining,
      options: EncoderOptions.names.union([
        "model", "mode", "preset", "families", "length-bins", "plots", "cache-dir", "threshold",
      ]),
      flags: ["json", "include-harmful", "no-cache"])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard arguments.positional.isEmpty else {
      throw .usage("evaluate takes no positional arguments, got '\(arguments.positional[0])'")
    }
    guard !corpora.isEmpty else { throw .usage("evaluate needs at least one --corpus FILE") }
    let mode = arguments.value("mode") ?? "test"
    guard ["test", "lofo"].contains(mode) else { throw .usage("--mode must be test or lofo, got '\(mode)'") }
    let bins = try arguments.integer("length-bins", default: 6, in: 1...50)
    let thresholdOverride = try ModelLoading.threshold(arguments.value("threshold"))
    guard thresholdOverride == nil || mode == "test" else {
      throw .usage("--threshold is for --mode test (leave-one-family-out calibrates each fold's own)")
    }
    let noCache = arguments.flag("no-cache")
    guard !noCache || mode == "test" else {
      throw .usage("--no-cache is for --mode test (leave-one-family-out trains on cached rows)")
    }
    try EncoderOptions.applyThreads(arguments)

    let environment = try TrainingEnvironment(arguments)
    let digest = environment.identity.sha256
    let identity = environment.identity
    let progress = ProgressReporter.standardError()
    let output = OutputWriter()
    do {
      let corpus = try Corpus(contentsOf: corpora.map { URL(fileURLWithPath: $0) })
      if mode == "test" {
        let path = arguments.value("model") ?? ModelLoading.defaultBundlePath()
        let url = URL(fileURLWithPath: path)
        let bundle = try ModelBundle.read(from: url, encoderSHA256: digest)
        let modelID = try ModelBundle.modelID(of: url)
        let provider = environment.provider(maxWindows: bundle.configuration.maxWindows)
        let run = try EvaluationRunner.testSplit(
          bundle: bundle, modelID: modelID, corpus: corpus, embeddings: provider,
          includeHarmful: arguments.flag("include-harmful"), progress: progress)
        let threshold = thresholdOverride ?? run.threshold
        let report = try makeReport(
          modelID: modelID, threshold: threshold, examples: run.examples,
          target: bundle.configuration.targetFalsePositiveRate, bins: bins)
        try emit(report, json: arguments.flag("json"), to: output)
        if let directory = arguments.value("plots") {
          try plot(run.examples, threshold: threshold, modelID: modelID, into: directory)
        }
      } else {
        let presets = (arguments.value("preset") ?? "reference").split(separator: ",").map(String.init)
        let families = arguments.value("families").map { $0.split(separator: ",").map(String.init) }
        var comparison: [EvaluationReport.ModelComparisonRow] = []
        var reports: [String: EvaluationReport] = [:]
        for preset in presets {
          var configuration = try DetectorConfiguration.preset(named: preset)
          try configuration.apply(overrides)
          try configuration.validate()
          let provider = environment.provider(maxWindows: configuration.maxWindows)
          let runs = try EvaluationRunner.leaveOneFamilyOut(
            configuration: configuration, corpus: corpus, embeddings: provider, encoder: identity,
            families: families, progress: progress)
          let report = try lofoReport(
            preset: preset, runs: runs, target: configuration.targetFalsePositiveRate, bins: bins)
          reports[preset] = report
          comparison.append(EvaluationReport.ModelComparisonRow(model: preset, report: report))
          if let directory = arguments.value("plots") {
            for run in runs {
              let family = run.metadata["held_out_family"] ?? run.name
              try plot(
                run.examples, threshold: run.threshold, modelID: "\(preset) without \(family)",
                into: directory + "/\(preset)/\(family)")
            }
          }
        }
        if arguments.flag("json") {
          try output.write(try json(presets.compactMap { reports[$0] }) + "\n")
        } else {
          for preset in presets {
            guard let report = reports[preset], let summary = report.leaveOneFamilyOut else { continue }
            try output.write("== \(preset): leave-one-family-out\n")
            try output.write(EvaluationReport.renderLeaveOneFamilyOut(summary) + "\n")
            if let matched = report.lengthMatched {
              try output.write("== \(preset): length-matched (pooled held-out families vs benign)\n")
              try output.write(EvaluationReport.renderLengthMatched(matched) + "\n")
            }
          }
          if presets.count > 1 {
            try output.write("== comparison\n" + EvaluationReport.renderComparison(comparison) + "\n")
          }
        }
      }
      try output.flush()
      return 0
    } catch let error as CommandError {
      throw error
    } catch let error as DetectionError {
      throw .failure(error.message)
    } catch {
      throw .failure("\(error)")
    }
  }

  private static func makeReport(
    modelID: String, threshold: Float, examples: [ScoredExample], target: Double, bins: Int
  ) throws(DetectionError) -> EvaluationReport {
    do {
      return try EvaluationReport(
        modelID: modelID, threshold: threshold, examples: examples, targetFalsePositiveRate: target,
        lengthMatchingBins: bins)
    } catch let error as DetectionError {
      throw error
    } catch {
      throw DetectionError(.internalError, "report: \(error)")
    }
  }

  /// The pooled report of leave-one-family-out runs: per-family rows at each run's own
  /// threshold, and the length-matched block over the pooled held-out examples, each scored
  /// relative to its own run's threshold (score − threshold, so one cut at 0 applies to all);
  /// the benign test records appear once per run, scored by that run's model.
  private static func lofoReport(
    preset: String, runs: [EvaluationRunner.Run], target: Double, bins: Int
  ) throws(DetectionError) -> EvaluationReport {
    var rows: [EvaluationReport.LeaveOneFamilyOutRow] = []
    var pooled: [ScoredExample] = []
    for run in runs {
      let family = run.metadata["held_out_family"] ?? run.name
      do {
        rows.append(
          try EvaluationReport.LeaveOneFamilyOutRow(
            family: family, threshold: run.threshold, examples: run.examples))
      } catch {
        throw DetectionError(.internalError, "leave-one-family-out row for \(family): \(error)")
      }
      for example in run.examples {
        var shifted = example
        shifted.score = example.score - run.threshold
        pooled.append(shifted)
      }
    }
    var report = try makeReport(modelID: preset, threshold: 0, examples: pooled, target: target, bins: bins)
    report.leaveOneFamilyOut = EvaluationReport.LeaveOneFamilyOutSummary(rows: rows)
    return report
  }

  private static func emit(_ report: EvaluationReport, json asJSON: Bool, to output: OutputWriter)
    throws(CommandError)
  {
    if asJSON {
      let text: String
      do {
        text = try json([report])
      } catch {
        throw .failure(error.message)
      }
      try output.write(text + "\n")
    } else {
      try output.write(report.renderText())
    }
  }

  private static func json(_ reports: [EvaluationReport]) throws(DetectionError) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    do {
      let data = try encoder.encode(
        reports.count == 1 ? AnyReports.one(reports[0]) : AnyReports.many(reports))
      return String(decoding: data, as: UTF8.self)
    } catch {
      throw DetectionError(.internalError, "cannot encode the report: \(error)")
    }
  }

  private static func plot(
    _ examples: [ScoredExample], threshold: Float, modelID: String, into directory: String
  )
    throws(DetectionError)
  {
    do {
      _ = try SVGPlots.writeAll(
        examples, threshold: threshold, modelID: modelID,
        to: URL(fileURLWithPath: directory, isDirectory: true))
    } catch let error as DetectionError {
      throw error
    } catch {
      throw DetectionError(.io, "cannot write plots into \(directory): \(error)")
    }
  }

  /// One report as an object, several as an array.
  private enum AnyReports: Encodable {
    case one(EvaluationReport)
    case many([EvaluationReport])

    func encode(to encoder: any Encoder) throws {
      switch self {
      case .one(let report): try report.encode(to: encoder)
      case .many(let reports): try reports.encode(to: encoder)
      }
    }
  }
}
