import Detection
import Embeddings
import Foundation

/// `curvalid model inspect|compare|calibrate`: what is inside a model bundle, how two bundles
/// differ on a corpus's test split, and a bundle's threshold set again on a deployment's own
/// benign prompts.
enum ModelCommand {
  static let help = """
    usage: curvalid model inspect BUNDLE [--json]
           curvalid model compare A B --corpus FILE [--corpus FILE…] [OPTIONS]
           curvalid model calibrate BUNDLE --benign FILE --target-fpr R --output NEW [OPTIONS]

    inspect   prints the bundle's format version, model id, file size, encoder name and digest,
              training corpus digest and counts, configuration, feature names, threshold and the
              test-split summary recorded at training time.
    compare   scores the corpus's test split with both bundles (sharing the embedding cache), prints
              their metrics per family side by side, and lists the prompts on which their decisions
              differ (the first 20, text cut to 100 characters, and the total).
    calibrate scores a sample of your own benign prompts (JSONL, CSV or text, as `score` reads
              them) and writes a copy of the bundle whose threshold rejects at most a fraction R of
              them (chunk and segment thresholds move with it). Every record must be a prompt; the
              sample needs at least 1/R prompts, better 10/R. The new bundle records the target,
              the sample size and the threshold it was trained with.

    options:
      --json               print JSON instead of text
      --corpus FILE        corpus JSONL for compare (repeatable)
      --cache-dir DIR      embedding cache for compare (default: the one `train` uses)
      --no-cache           compare: compute every prompt's rows afresh in full precision, as
                           `score` does, and write nothing to the cache
      --include-harmful    compare: count `harmful` records as attacks
      --benign FILE        calibrate: the benign sample (- for standard input)
      --target-fpr R       calibrate: the false-positive rate to allow on it (e.g. 0.005)
      --output FILE        calibrate: where to write the new bundle (not the bundle itself)
      --format FORMAT      calibrate: jsonl, csv or text (default: by extension, else jsonl)
      --field NAME         calibrate: the prompt field or column (default: text, then prompt)
    \(EncoderOptions.help)
      -h, --help           show this help

    """

  /// The options and flags each action takes (`--help` aside; `--corpus` is checked by each):
  /// one given to an action that would ignore it is refused, not silently dropped.
  static let actionOptions: [String: Set<String>] = [
    "inspect": ["json"],
    "compare": EncoderOptions.names.union(["cache-dir", "include-harmful", "json", "no-cache"]),
    "calibrate": EncoderOptions.names.union(calibrateOptions).union(["json"]),
  ]

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    var remaining = raw
    let corpora = try TrainCommand.extract("corpus", from: &remaining)
    let arguments = try Arguments(
      remaining, options: EncoderOptions.names.union(["cache-dir"]).union(calibrateOptions),
      flags: ["json", "include-harmful", "no-cache"])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard let action = arguments.positional.first else {
      throw .usage("model needs an action: inspect, compare or calibrate (see --help)")
    }
    let operands = Array(arguments.positional.dropFirst())
    if let accepted = actionOptions[action],
      let option = arguments.givenNames.subtracting(accepted).sorted().first
    {
      let owners = actionOptions.filter { $0.value.contains(option) }.keys.sorted()
      throw .usage(
        "--\(option) is not an option of model \(action)"
          + (owners.isEmpty ? "" : " (it is one of model \(owners.joined(separator: " and model ")))"))
    }
    switch action {
    case "inspect":
      guard operands.count == 1 else { throw .usage("model inspect takes one BUNDLE, got \(operands.count)") }
      guard corpora.isEmpty else { throw .usage("model inspect takes no --corpus") }
      return try inspect(operands[0], json: arguments.flag("json"))
    case "compare":
      guard operands.count == 2 else {
        throw .usage("model compare takes two bundles A B, got \(operands.count)")
      }
      guard !corpora.isEmpty else { throw .usage("model compare needs at least one --corpus FILE") }
      return try compare(operands[0], operands[1], corpora: corpora, arguments: arguments)
    case "calibrate":
      guard operands.count == 1 else {
        throw .usage("model calibrate takes one BUNDLE, got \(operands.count)")
      }
      guard corpora.isEmpty else { throw .usage("model calibrate takes no --corpus (use --benign FILE)") }
      return try calibrate(operands[0], arguments: arguments)
    default:
      throw .usage("unknown model action '\(action)' (inspect, compare or calibrate)")
    }
  }

  // MARK: inspect

  private static func inspect(_ path: String, json asJSON: Bool) throws(CommandError) -> Int32 {
    let url = URL(fileURLWithPath: path)
    guard FileManager.default.fileExists(atPath: path) else {
      throw .failure("model bundle \(path) not found")
    }
    let bundle: ModelBundle
    let modelID: String
    do {
      bundle = try ModelBundle.read(from: url, encoderSHA256: nil)
      modelID = try ModelBundle.modelID(of: url)
    } catch {
      throw .failure(error.message)
    }
    let size = ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
    let configuration = bundle.configuration.json()
    let features = bundle.model.wireNames
    let counts = bundle.trainingCounts.sorted { $0.key < $1.key }
    let evaluation = bundle.evaluation.sorted { $0.key < $1.key }
    let output = OutputWriter()
    if asJSON {
      let fields = [
        "\"path\":\(JSONText.string(path))",
        "\"model_id\":\(JSONText.string(modelID))",
        "\"format_version\":\(JSONText.string(ModelBundle.formatVersion))",
        "\"file_size\":\(size)",
        "\"encoder\":{\"name\":\(JSONText.string(bundle.encoderName)),"
          + "\"sha256\":\(JSONText.string(bundle.encoderSHA256))}",
        "\"corpus\":{\"sha256\":\(JSONText.string(bundle.corpusDigest)),\"counts\":{"
          + counts.map { "\(JSONText.string($0.key)):\($0.value)" }.joined(separator: ",") + "}}",
        "\"configuration\":\(configuration)",
        "\"blocks\":[" + bundle.configuration.features.map(JSONText.string).joined(separator: ",") + "]",
        "\"features\":[" + features.map(JSONText.string).joined(separator: ",") + "]",
        "\"threshold\":\(JSONText.number(bundle.threshold))",
        "\"fused_block\":\(bundle.configuration.classifier.fuse.map(JSONText.string) ?? "null")",
        "\"fusion_rule\":\(bundle.model.fusion.map { JSONText.string($0.rule.rawValue) } ?? "null")",
        "\"encoder_tuned_layers\":\(bundle.model.tunedLayers.count)",
        "\"chunking\":"
          + (bundle.configuration.chunking.map {
            "{\"length\":\($0.length),\"stride\":\($0.stride),\"calibration\":\(JSONText.string($0.calibration)),"
              + "\"shift\":\(bundle.model.chunkShift.map(JSONText.number) ?? "null"),"
              + "\"segments\":\($0.segments),\"segment_shift\":"
              + "\(bundle.model.segmentShift.map(JSONText.number) ?? "null")}"
          } ?? "null"),
        "\"evaluation\":{"
          + evaluation.map { "\(JSONText.string($0.key)):\(JSONText.number($0.value))" }.joined(
            separator: ",")
          + "}",
        "\"tool\":\(JSONText.string(bundle.tool))",
      ]
      try output.write("{" + fields.joined(separator: ",") + "}\n")
    } else {
      var text = """
        model \(modelID)  (\(path), \(size) bytes, format version \(ModelBundle.formatVersion))
        written by: \(bundle.tool)
        encoder: \(bundle.encoderName)  sha256 \(bundle.encoderSHA256)
        training corpus: sha256 \(bundle.corpusDigest)
        threshold: \(bundle.threshold)\(calibrationNote(bundle))
        feature blocks: \(bundle.configuration.features.joined(separator: ", "))
        features: \(features.joined(separator: ", ")) (the scalars reported with each decision)

        """
      if let fused = bundle.configuration.classifier.fuse, let fusion = bundle.model.fusion,
        fusion.rule == .separate
      {
        let budget =
          bundle.configuration.classifier.fuseFalsePositiveRate ?? bundle.configuration
          .targetFalsePositiveRate / 4
        text += String(
          format:
            "score: the classifier at the threshold, or %@ alone above its own threshold %.4f (rule separate, "
            + "%.2f%% of the benign calibration prompts%@)\n",
          fused, fusion.blockThreshold(onto: bundle.threshold), budget * 100, movedNote(bundle))
      } else if let fused = bundle.configuration.classifier.fuse, let fusion = bundle.model.fusion {
        text += String(
          format:
            "score: the classifier fused with %@ by the %@ rule (benign calibration center / scale: "
            + "classifier logit %.4f / %.4f, %@ %.4f / %.4f)\n",
          fused, fusion.rule.rawValue, fusion.classifierCenter, fusion.classifierScale, fused,
          fusion.blockCenter, fusion.blockScale)
      }
      let members = bundle.configuration.classifier.memberCount
      if members > 1 {
        text +=
          "classifier: the mean logit of \(members) \(bundle.configuration.classifier.kind) classifiers trained "
          + "on the same features from successive seeds\n"
      }
      if let tuning = bundle.configuration.encoderTuning {
        text +=
          "encoder: top \(tuning.layers) layer(s) fine-tuned on the detection objective and stored in the "
          + "bundle (\(tuning.epochs) epochs, \(tuning.crop)-row crops)\n"
      }
      if let chunking = bundle.configuration.chunking {
        text +=
          "score: the larger of the whole prompt's and its chunks' scores (chunks of \(chunking.length) word "
          + "pieces every \(chunking.stride), each encoded alone; calibration \(chunking.calibration)"
          + (bundle.evaluation["whole_prompt_fpr_budget"].map {
            String(
              format: ", the whole prompt's share of the %.2f%% target %.2f%%",
              bundle.configuration.targetFalsePositiveRate * 100, $0 * 100)
          } ?? "")
          + (bundle.model.chunkShift.map { String(format: ", chunk logit shift %.4f", $0) } ?? "") + ")\n"
        if chunking.segments, let shift = bundle.model.segmentShift {
          text += String(
            format:
              "score: also each line and sentence of a prompt with several, encoded alone (at most %d), "
              + "above its own threshold %.4f (%.2f%% of the benign training and calibration prompts%@; "
              + "segment logit shift %.4f)\n",
            chunking.maxSegments, ScoringModel.shifted(bundle.threshold, by: -shift),
            bundle.configuration.segmentBudget * 100, movedNote(bundle),
            shift)
        }
      }
      text += "training counts:\n"
      let width = counts.map(\.key.count).max() ?? 0
      for (key, value) in counts {
        text += "  " + key.padding(toLength: width + 2, withPad: " ", startingAt: 0) + "\(value)\n"
      }
      text +=
        bundle.evaluation[SummaryKey.target] == nil
        ? "evaluation (test split at training time):\n"
        : "evaluation (test split at training time, at the trained threshold):\n"
      for (key, value) in evaluation {
        text +=
          "  \(key): \(value == value.rounded() && abs(value) >= 1 ? "\(Int(value))" : String(format: "%.4f", value))\n"
      }
      text += "configuration: \(configuration)\n"
      try output.write(text)
    }
    try output.flush()
    return 0
  }

  /// ` at training, moved …` after a part threshold's training budget when `model calibrate` has
  /// moved the threshold (the part thresholds keep their offsets from it), else nothing.
  private static func movedNote(_ bundle: ModelBundle) -> String {
    bundle.evaluation[SummaryKey.target] == nil
      ? "" : " at training, moved with the threshold by model calibrate"
  }

  /// The ` (calibrated …)` note after an inspected bundle's threshold, when `model calibrate` set it.
  private static func calibrationNote(_ bundle: ModelBundle) -> String {
    guard let target = bundle.evaluation[SummaryKey.target] else { return "" }
    let prompts = Int(bundle.evaluation[SummaryKey.prompts] ?? 0)
    let reached = bundle.evaluation[SummaryKey.reached].map { ", reached \(percent($0))" } ?? ""
    let trained =
      bundle.evaluation[SummaryKey.trainedThreshold].map { "; trained threshold \(Float($0))" } ?? ""
    return
      " (set by `model calibrate` to a \(percent(target)) target FPR on \(prompts) benign prompts\(reached)\(trained))"
  }

  // MARK: compare

  /// One prompt on which the two models decide differently.
  private struct Disagreement {
    let text: String
    let family: String
    let isAttack: Bool
    let scores: (Float, Float)
    let rejects: (Bool, Bool)
  }

  private static func compare(
    _ first: String, _ second: String, corpora: [String], arguments: Arguments
  ) throws(CommandError) -> Int32 {
    try EncoderOptions.applyThreads(arguments)
    let environment = try TrainingEnvironment(arguments)
    let digest = environment.identity.sha256
    let includeHarmful = arguments.flag("include-harmful")
    let progress = ProgressReporter.standardError()
    var reports: [EvaluationReport] = []
    var runs: [EvaluationRunner.Run] = []
    let corpus: Corpus
    do throws(DetectionError) {
      corpus = try Corpus(contentsOf: corpora.map { URL(fileURLWithPath: $0) })
      for path in [first, second] {
        guard FileManager.default.fileExists(atPath: path) else {
          throw DetectionError(.io, "model bundle \(path) not found")
        }
        let url = URL(fileURLWithPath: path)
        let bundle = try ModelBundle.read(from: url, encoderSHA256: digest)
        let modelID = try ModelBundle.modelID(of: url)
        let provider = environment.provider(maxWindows: bundle.configuration.maxWindows)
        let run = try EvaluationRunner.testSplit(
          bundle: bundle, modelID: modelID, corpus: corpus, embeddings: provider,
          includeHarmful: includeHarmful, progress: progress)
        runs.append(run)
        do {
          reports.append(
            try EvaluationReport(
              modelID: modelID, threshold: run.threshold, examples: run.examples,
              targetFalsePositiveRate: bundle.configuration.targetFalsePositiveRate))
        } catch {
          throw DetectionError(.internalError, "report for \(path): \(error)")
        }
      }
    } catch {
      throw .failure(error.message)
    }
    let labels: Set<CorpusRecord.Label> =
      includeHarmful ? [.benign, .adversarial, .harmful] : [.benign, .adversarial]
    let indices = corpus.select(splits: [.test], labels: labels)
    var disagreements: [Disagreement] = []
    var total = 0
    for (slot, index) in indices.enumerated()
    where slot < runs[0].examples.count && slot < runs[1].examples.count {
      let a = runs[0].examples[slot]
      let b = runs[1].examples[slot]
      let rejects = (a.score >= runs[0].threshold, b.score >= runs[1].threshold)
      guard rejects.0 != rejects.1 else { continue }
      total += 1
      if disagreements.count < 20 {
        disagreements.append(
          Disagreement(
            text: truncated(corpus.records[index].text), family: a.family, isAttack: a.isAttack,
            scores: (a.score, b.score), rejects: rejects))
      }
    }
    let output = OutputWriter()
    if arguments.flag("json") {
      try output.write(try json(reports, disagreements: disagreements, total: total) + "\n")
    } else {
      try output.write(sideBySide(reports[0], reports[1]))
      try output.write(
        "\ndisagreements: \(total) of \(indices.count) test prompts"
          + (total > disagreements.count ? " (first \(disagreements.count) shown)" : "") + "\n")
      for entry in disagreements {
        let verdicts = [entry.rejects.0, entry.rejects.1].map { $0 ? "reject" : "accept" }
        try output.write(
          "  A \(verdicts[0]) \(String(format: "%.3f", entry.scores.0))  B \(verdicts[1]) "
            + "\(String(format: "%.3f", entry.scores.1))  [\(entry.isAttack ? "attack" : "benign")/"
            + "\(entry.family)] \(JSONText.string(entry.text))\n")
      }
    }
    try output.flush()
    return 0
  }

  /// The first 100 characters of `text`, with `…` when cut.
  private static func truncated(_ text: String) -> String {
    text.count > 100 ? String(text.prefix(100)) + "…" : text
  }

  /// Both reports as one table: overall, then each attack family (TPR) and benign family (FPR).
  private static func sideBySide(_ a: EvaluationReport, _ b: EvaluationReport) -> String {
    func percent(_ value: Double?) -> String {
      guard let value, value.isFinite else { return "-" }
      return String(format: "%.1f%%", value * 100)
    }
    func decimal(_ value: Double?) -> String {
      guard let value, value.isFinite else { return "-" }
      return String(format: "%.3f", value)
    }
    var rows: [[String]] = [
      ["group", "metric", "A \(a.modelID)", "B \(b.modelID)"],
      ["threshold", "", String(format: "%.4f", a.threshold), String(format: "%.4f", b.threshold)],
      ["overall", "accuracy", percent(a.overall.accuracy), percent(b.overall.accuracy)],
      ["overall", "TPR", percent(a.overall.recall), percent(b.overall.recall)],
      ["overall", "FPR", percent(a.overall.falsePositiveRate), percent(b.overall.falsePositiveRate)],
      ["overall", "F1", percent(a.overall.f1), percent(b.overall.f1)],
      ["overall", "ROC-AUC", decimal(a.overall.rocAUC), decimal(b.overall.rocAUC)],
      ["overall", "macro TPR", percent(a.macroTPR), percent(b.macroTPR)],
    ]
    for (kind, left, right, isAttack) in [
      ("attack", a.attackFamilies, b.attackFamilies, true),
      ("benign", a.benignFamilies, b.benignFamilies, false),
    ] {
      let names = Set(left.map(\.name)).union(right.map(\.name)).sorted()
      for name in names {
        let l = left.first { $0.name == name }
        let r = right.first { $0.name == name }
        let count = l?.count ?? r?.count ?? 0
        let group = "\(kind)/\(name) (\(count))"
        if isAttack {
          rows.append([group, "TPR", percent(l?.truePositiveRate), percent(r?.truePositiveRate)])
          rows.append([group, "ROC-AUC", decimal(l?.rocAUC), decimal(r?.rocAUC)])
        } else {
          rows.append([group, "FPR", percent(l?.falsePositiveRate), percent(r?.falsePositiveRate)])
        }
      }
    }
    let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
      row.enumerated().map { column, cell in
        column < 2
          ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
          : String(repeating: " ", count: widths[column] - cell.count) + cell
      }.joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
  }

  private static func json(_ reports: [EvaluationReport], disagreements: [Disagreement], total: Int)
    throws(CommandError) -> String
  {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var encoded: [String] = []
    for report in reports {
      guard let data = try? encoder.encode(report) else { throw .failure("cannot encode the report") }
      encoded.append(String(decoding: data, as: UTF8.self))
    }
    let entries = disagreements.map { entry in
      "{\"text\":\(JSONText.string(entry.text)),\"family\":\(JSONText.string(entry.family)),"
        + "\"label\":\(JSONText.string(entry.isAttack ? "attack" : "benign")),"
        + "\"a\":{\"score\":\(JSONText.number(entry.scores.0)),"
        + "\"decision\":\(JSONText.string(entry.rejects.0 ? "reject" : "accept"))},"
        + "\"b\":{\"score\":\(JSONText.number(entry.scores.1)),"
        + "\"decision\":\(JSONText.string(entry.rejects.1 ? "reject" : "accept"))}}"
    }
    return "{\"a\":\(encoded[0]),\"b\":\(encoded[1]),\"disagreements\":{\"total\":\(total),"
      + "\"examples\":[\(entries.joined(separator: ","))]}}"
  }
}
