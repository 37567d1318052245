import Detection
import Embeddings
import Foundation
import LinearAlgebra

/// `curvalid bench detector`: the encoder's time per prompt against everything the detector does
/// after it (issue 6: feature extraction and classifier add at most 20% to the encoder's time).
enum BenchDetectorCommand {
  static let help = """
    usage: curvalid bench detector [OPTIONS]

    Times the detector on one synthetic prompt of exactly T tokens ([CLS], T − 2 seeded
    whole-word vocabulary entries, [SEP]), batch 1, without explanations. After 3 warm-up calls,
    each of --runs runs measures in turn (a) the encoder: WordPiece tokenization and the forward
    pass (`Detector.embed`); (b) everything the detector does after the encoder: the feature
    network, every feature block of the bundle (supervised CNN windows, mean embedding, PromptLID
    kNN against the stored benign set, TextCurv) and the classifier (`Detector.decide`); and the
    whole `Detector.score` call (for a model with chunk scoring it also encodes and scores each
    chunk of a prompt longer than one chunk, and with segment scoring each of its lines and
    sentences, so only this column includes them). It prints the median (min, max) of each over
    the runs, b/a in percent (of the medians; issue 6 asks for at most 20%), how many segments the
    model reads alone, and the median time of each stage of (b). Without --threads it runs once
    with 1 and once with 2 BLAS threads. Timings are wall-clock: on a shared machine expect ±10–20%.

    options:
      --lengths LIST  token counts, comma-separated, 3 to 512 (default 16,64,128,256,512)
      --runs N        runs per length, at least 20 (default 30)
      --sentence-words N
                      end a sentence after every N words (a "." piece, the next word
                      capitalized; the prompt keeps its T tokens), so that the score column
                      includes a segment-scoring model's segments (default: one sentence)
      --model FILE    model bundle (default as for `curvalid score`: $CURVALID_MODEL, else
                      server/models/default.safetensors)
      --encoder DIR   encoder directory (default: the verified cache, see `curvalid embed --help`)
      --threads N     only this BLAS thread count (default: 1 and 2)
      --json          print JSON lines instead of tables
      -h, --help      show this help

    """

  /// Median, minimum and maximum of some timings, ms.
  struct Latency {
    let median: Double
    let minimum: Double
    let maximum: Double

    init(_ milliseconds: [Double]) {
      let sorted = milliseconds.sorted()
      median = BenchCommand.median(sorted)
      minimum = sorted.first ?? 0
      maximum = sorted.last ?? 0
    }
  }

  /// One row of results.
  struct Row {
    let threads: Int
    let tokens: Int
    /// (a) `Detector.embed`.
    let encoder: Latency
    /// (b) `Detector.decide`.
    let afterEncoder: Latency
    /// `Detector.score`, end to end.
    let score: Latency
    /// The lines and sentences the model encodes alone besides the whole prompt (0 without
    /// segment scoring, or for a prompt of one sentence).
    let segments: Int
    /// Median ms of each stage of (b), in the order the model runs them.
    let stages: [(name: String, milliseconds: Double)]

    /// (b) over (a), percent of the medians.
    var percent: Double { afterEncoder.median / encoder.median * 100 }
  }

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(
      raw, options: ["lengths", "runs", "model", "encoder", "threads", "sentence-words"], flags: ["json"])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard arguments.positional.isEmpty else {
      throw .usage("bench detector takes no arguments, got '\(arguments.positional.joined(separator: " "))'")
    }
    let lengths = try arguments.integers("lengths", default: [16, 64, 128, 256, 512], in: 3...512)
    let runs = try arguments.integer("runs", default: 30, in: 20...100_000)
    let sentenceWords =
      try arguments.value("sentence-words") == nil
      ? nil : arguments.integer("sentence-words", default: 0, in: 2...510)
    let threadSettings =
      try arguments.value("threads") == nil ? [1, 2] : [EncoderOptions.applyThreads(arguments)]
    let detector = try ModelLoading.loadDetector(
      bundlePath: arguments.value("model"), encoderDirectory: arguments.value("encoder"))
    let configuration = detector.encoder.model.configuration
    guard lengths.allSatisfy({ $0 <= configuration.maxPositions }) else {
      throw .usage("--lengths must not exceed the encoder's \(configuration.maxPositions) positions")
    }
    let texts = try lengths.map { (tokens) throws(CommandError) in
      try text(tokens: tokens, encoder: detector.encoder, sentenceWords: sentenceWords)
    }
    let json = arguments.flag("json")
    let output = OutputWriter()
    if !json {
      try BenchCommand.show(
        "model \(detector.modelID): \(detector.bundle.configuration.features.joined(separator: ", ")); "
          + "encoder: \(configuration.layerCount) layers, hidden \(configuration.hiddenSize); "
          + "\(ProcessInfo.processInfo.activeProcessorCount) CPUs\n", on: output)
    }
    for threads in threadSettings {
      BLAS.threadCount = threads
      if !json {
        try BenchCommand.show(
          "\nBLAS threads: \(BLAS.threadCount); median (min–max) ms over \(runs) runs, one prompt\n"
            + "tokens  encoder ms               after encoder ms         after/encoder  "
            + "score ms                 segments\n",
          on: output)
      }
      var rows: [Row] = []
      for (tokens, text) in zip(lengths, texts) {
        let row = try measure(
          detector: detector, text: text, tokens: tokens, runs: runs, threads: BLAS.threadCount)
        rows.append(row)
        try BenchCommand.show(json ? jsonLine(row) : tableLine(row), on: output)
      }
      if !json {
        try BenchCommand.show(stageTable(rows), on: output)
      }
    }
    return 0
  }

  /// Text of exactly `tokens` encoder rows in one window: the whole-word vocabulary entries
  /// (lowercase letters, each its own word piece) among `BenchCommand.prompt`'s seeded ids, joined
  /// by spaces. With `sentenceWords` N, every (N + 1)-th of them is replaced by "." and the word
  /// after it capitalized (the uncased tokenizer reads it as the same piece), so the text is
  /// sentences of N words.
  ///
  /// - Throws: `CommandError.failure` when the vocabulary has too few such words.
  static func text(tokens: Int, encoder: TextEncoder, sentenceWords: Int? = nil) throws(CommandError)
    -> String
  {
    var words: [String] = []
    var seed: UInt64 = 1
    while words.count < tokens - 2, seed <= 64 {
      for id in BenchCommand.prompt(tokens: 514, seed: seed, encoder: encoder).dropFirst().dropLast()
      where words.count < tokens - 2 {
        let word = encoder.token(for: id)
        if word.allSatisfy({ $0.isASCII && $0.isLowercase }), encoder.tokenizer.pieceIDs(for: word) == [id] {
          words.append(word)
        }
      }
      seed += 1
    }
    if let sentenceWords {
      for index in words.indices where (index + 1) % (sentenceWords + 1) == 0 {
        words[index] = "."
        if index + 1 < words.count { words[index + 1] = words[index + 1].capitalized }
      }
    }
    let text = words.joined(separator: " ")
    let windows = encoder.windows(for: text)
    guard windows.count == 1, windows[0].count == tokens else {
      throw .failure("cannot build a prompt of \(tokens) tokens from the encoder's vocabulary")
    }
    return text
  }

  private static func measure(detector: Detector, text: String, tokens: Int, runs: Int, threads: Int)
    throws(CommandError) -> Row
  {
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
    var encoder: [Double] = []
    var after: [Double] = []
    var whole: [Double] = []
    var stageNames: [String] = []
    var stageTimes: [String: [Double]] = [:]
    do throws(DetectionError) {
      for _ in 0..<3 {
        if case .failure(let error) = detector.score([text], explain: false).first { throw error }
      }
      for _ in 0..<runs {
        let stages = StageClock()
        let start = now()
        let embedded = try detector.embed([text])
        let middle = now()
        _ = try detector.decide(embedded, parts: nil, explain: false, stages: stages)
        let end = now()
        _ = detector.score([text], explain: false)
        whole.append(now() - end)
        encoder.append(middle - start)
        after.append(end - middle)
        if stageNames.isEmpty { stageNames = stages.names }
        for (name, seconds) in stages.seconds { stageTimes[name, default: []].append(seconds * 1000) }
      }
    } catch {
      throw .failure(error.message)
    }
    var segments = 0
    if let chunking = detector.bundle.configuration.chunking, chunking.segments {
      segments = PromptSegments.indexedSegments(of: text, limit: chunking.maxSegments).count
    }
    return Row(
      threads: threads, tokens: tokens, encoder: Latency(encoder), afterEncoder: Latency(after),
      score: Latency(whole), segments: segments,
      stages: stageNames.map { (name: $0, milliseconds: Latency(stageTimes[$0] ?? []).median) })
  }

  private static func tableLine(_ row: Row) -> String {
    func latency(_ value: Latency) -> String {
      String(format: "%.2f (%.2f–%.2f)", value.median, value.minimum, value.maximum)
    }
    func padRight(_ text: String, _ width: Int) -> String {
      text + String(repeating: " ", count: max(1, width - text.count))
    }
    return BenchCommand.pad(String(row.tokens), 6) + "  " + padRight(latency(row.encoder), 25)
      + padRight(latency(row.afterEncoder), 25) + BenchCommand.pad(String(format: "%.1f%%", row.percent), 13)
      + "  " + padRight(latency(row.score), 25) + String(row.segments) + "\n"
  }

  /// The median ms of each stage after the encoder, one line per length.
  private static func stageTable(_ rows: [Row]) -> String {
    guard let names = rows.first?.stages.map(\.name), !names.isEmpty else { return "" }
    let widths = names.map { max(8, $0.count) + 2 }
    var text = "stages after the encoder, median ms:\ntokens"
    for (name, width) in zip(names, widths) { text += BenchCommand.pad(name, width) }
    text += "\n"
    for row in rows {
      text += BenchCommand.pad(String(row.tokens), 6)
      for (stage, width) in zip(row.stages, widths) {
        text += BenchCommand.cell(stage.milliseconds, width, 3)
      }
      text += "\n"
    }
    return text
  }

  private static func jsonLine(_ row: Row) -> String {
    func latency(_ key: String, _ value: Latency) -> String {
      "\"\(key)_median_ms\":\(JSONText.number(value.median)),\"\(key)_min_ms\":\(JSONText.number(value.minimum)),"
        + "\"\(key)_max_ms\":\(JSONText.number(value.maximum))"
    }
    let stages = row.stages.map { "\(JSONText.string($0.name)):\(JSONText.number($0.milliseconds))" }
    return "{\"threads\":\(row.threads),\"tokens\":\(row.tokens),\(latency("encoder", row.encoder)),"
      + "\(latency("after_encoder", row.afterEncoder)),"
      + "\"after_encoder_percent\":\(JSONText.number(row.percent)),\(latency("score", row.score)),"
      + "\"segments\":\(row.segments),"
      + "\"stages_median_ms\":{\(stages.joined(separator: ","))}}\n"
  }
}
