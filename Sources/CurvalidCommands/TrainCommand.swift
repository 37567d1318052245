import Detection
import Embeddings
import Foundation

/// `curvalid train`: corpus JSONL in, one model bundle out.
enum TrainCommand {
  static let help = """
    usage: curvalid train --corpus FILE [--corpus FILE…] [OPTIONS]

    Trains a detector (DESIGN.md §1–2) and writes one model bundle. Prompts are embedded once and
    cached on disk (keyed by encoder and text digest); progress goes to standard error, a summary
    with the test-split metrics to standard output.

    options:
      --corpus FILE      corpus JSONL from tooling/corpus/build_corpus.py (repeatable)
      --preset NAME      configuration preset (default: reference; the shipped model is `default`):
                         \(DetectorConfiguration.presetNames.joined(separator: ", "))
      --set KEY=VALUE    override a configuration field, e.g. featureNetwork.length=32,
                         classifier.kind=logistic, features=prompt_lid,log_tokens (repeatable)
      --output BUNDLE    where to write the bundle (default: model.safetensors)
      --seed N           random seed (default: the preset's, 42)
      --cache-dir DIR    embedding cache (default: <cache root>/embeddings/<encoder digest>/)
      --embed-only       fill the embedding cache and stop
      --audit DB         add the prompts labelled in this audit database (`curvalid audit label`)
                         to the training split, as family audit_labelled (counted in the bundle)
      --audit-weight N   how many times each labelled prompt counts (default 5)
    \(EncoderOptions.help)
      -h, --help         show this help

    """

  /// Pulls every `--name VALUE` / `--name=VALUE` occurrence out of `raw` (for repeatable options).
  static func extract(_ name: String, from raw: inout [String]) throws(CommandError) -> [String] {
    var values: [String] = []
    var rest: [String] = []
    var index = 0
    while index < raw.count {
      let argument = raw[index]
      if argument == "--" {
        rest += raw[index...]
        break
      }
      if argument == "--\(name)" {
        guard index + 1 < raw.count else { throw .usage("option --\(name) needs a value") }
        values.append(raw[index + 1])
        index += 2
        continue
      }
      if argument.hasPrefix("--\(name)=") {
        values.append(String(argument.dropFirst(name.count + 3)))
      } else {
        rest.append(argument)
      }
      index += 1
    }
    raw = rest
    return values
  }

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    var remaining = raw
    let corpora = try extract("corpus", from: &remaining)
    let overrides = try extract("set", from: &remaining)
    let arguments = try Arguments(
      remaining,
      options: EncoderOptions.names.union(["preset", "output", "seed", "cache-dir", "audit", "audit-weight"]),
      flags: ["embed-only"])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard arguments.positional.isEmpty else {
      throw .usage("train takes no positional arguments, got '\(arguments.positional[0])'")
    }
    guard !corpora.isEmpty else { throw .usage("train needs at least one --corpus FILE") }
    var configuration: DetectorConfiguration
    do throws(DetectionError) {
      configuration = try DetectorConfiguration.preset(named: arguments.value("preset") ?? "reference")
      try configuration.apply(overrides)
      if let seed = arguments.value("seed") {
        guard let value = UInt64(seed) else {
          throw DetectionError(.invalidInput, "--seed must be a non-negative integer")
        }
        configuration.seed = value
      }
      try configuration.validate()
    } catch {
      throw .usage(error.message)
    }
    let threads = try EncoderOptions.applyThreads(arguments)
    let environment = try TrainingEnvironment(arguments)
    let identity = environment.identity
    let cacheDirectory = environment.cacheDirectory
    let provider = environment.provider(maxWindows: configuration.maxWindows)
    let weight = try arguments.integer("audit-weight", default: 5, in: 1...1000)
    let audit = try arguments.value("audit").map { path throws(CommandError) in
      try AuditTrainingData.records(fromAudit: path, weight: weight)
    }
    let progress = ProgressReporter.standardError()
    do throws(DetectionError) {
      var corpus = try Corpus(contentsOf: corpora.map { URL(fileURLWithPath: $0) })
      if let auditPath = arguments.value("audit"), let audit {
        corpus = AuditTrainingData.merge(
          corpus, with: audit.records, auditDigest: audit.digest, path: auditPath)
        progress.note(
          "audit: \(audit.labelled) labelled prompts from \(auditPath) added to the training split "
            + "(family \(AuditTrainingData.family), each \(weight)×)")
      }
      progress.note(
        "corpus: \(corpus.records.count) records, sha256 \(corpus.digest.prefix(16))…; \(threads) threads")
      if arguments.flag("embed-only") {
        // With encoder tuning, training first reads the frozen states below the tuned layers.
        let first = try DetectorTraining.firstEmbeddings(for: configuration, embeddings: provider)
        let filled = try first.fill(corpus.records.map(\.text), progress: progress)
        let directory = first.cache?.directory ?? cacheDirectory
        print(
          "embedded \(filled.embedded) prompts in \(String(format: "%.1f", filled.seconds)) s into \(directory.path)"
        )
        return 0
      }
      let result = try DetectorTraining.train(
        corpus: corpus, configuration: configuration, embeddings: provider, encoder: identity,
        progress: progress)
      let output = URL(fileURLWithPath: arguments.value("output") ?? "model.safetensors")
      try result.bundle.write(to: output)
      let modelID = try ModelBundle.modelID(of: output)
      let size = (try? FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int) ?? 0
      let summary = result.bundle.evaluation
      func metric(_ key: String) -> String { summary[key].map { String(format: "%.4f", $0) } ?? "n/a" }
      print(
        """
        model \(modelID) written to \(output.path) (\(size) bytes)
        features: \(configuration.features.joined(separator: ", "))
        threshold: \(result.bundle.threshold) (target benign FPR \(configuration.targetFalsePositiveRate))
        embedding: \(result.embeddedPrompts) prompts embedded in \(String(format: "%.1f", result.embeddingSeconds)) s (cache: \(cacheDirectory.path))
        training: \(String(format: "%.1f", result.trainingSeconds)) s
        test split: ROC-AUC \(metric("roc_auc")), accuracy \(metric("accuracy")), TPR \(metric("tpr")), FPR \(metric("fpr")) \
        (\(Int(summary["test_attacks"] ?? 0)) attacks, \(Int(summary["test_benign"] ?? 0)) benign)
        """)
      return 0
    } catch {
      throw .failure(error.message)
    }
  }
}
