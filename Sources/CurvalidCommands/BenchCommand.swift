import Embeddings
import Foundation
import LinearAlgebra

/// `curvalid bench encoder`: encoder latency and throughput, with the BLAS thread setting.
enum BenchCommand {
  static let help = """
    usage: curvalid bench encoder [OPTIONS]
           curvalid bench detector [OPTIONS]  (encoder vs. the detector's work after it: see bench detector --help)
           curvalid bench service [OPTIONS]   (load generator for a running server: see bench service --help)

    Measures the encoder on synthetic prompts of fixed token counts: batch-1 latency (median, min,
    max over --runs runs after warm-up) and batched throughput, with the achieved GFLOP/s counting
    21.23e6·T + 9216·T² FLOPs per prompt of T tokens (all-MiniLM-L6-v2). Without --threads it runs
    once with 1 and once with 2 BLAS threads. Timings are wall-clock medians: on a shared machine
    expect ±10–20%.

    options:
      --lengths LIST  token counts, comma-separated (default 16,64,128,256,512)
      --runs N        batch-1 runs per length, at least 20 (default 30)
      --batch N       prompts per batched call (default 32)
      --json          print JSON lines instead of a table
      --encoder DIR   encoder directory (default: the verified cache, see `curvalid embed --help`)
      --threads N     only this BLAS thread count (default: 1 and 2)
      -h, --help      show this help

    """

  /// One row of results.
  struct Row {
    let threads: Int
    let tokens: Int
    let medianMilliseconds: Double
    let minimumMilliseconds: Double
    let maximumMilliseconds: Double
    let batch: Int
    let batchedMillisecondsPerPrompt: Double

    var flops: Double { 21.23e6 * Double(tokens) + 9216 * Double(tokens * tokens) }
    var gflops: Double { flops / (medianMilliseconds * 1e6) }
    var batchedGflops: Double { flops / (batchedMillisecondsPerPrompt * 1e6) }
    var promptsPerSecond: Double { 1000 / batchedMillisecondsPerPrompt }
  }

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    if raw.first == "service" { return try BenchServiceCommand.run(Array(raw.dropFirst())) }
    if raw.first == "detector" { return try BenchDetectorCommand.run(Array(raw.dropFirst())) }
    let arguments = try Arguments(
      raw, options: ["lengths", "runs", "batch", "encoder", "threads"], flags: ["json"])
    if arguments.flag("help") || arguments.positional.isEmpty {
      print(help, terminator: "")
      return arguments.flag("help") ? 0 : 64
    }
    guard arguments.positional == ["encoder"] else {
      throw .usage(
        "unknown benchmark '\(arguments.positional.joined(separator: " "))' (try: bench encoder, bench detector)"
      )
    }
    let lengths = try arguments.integers("lengths", default: [16, 64, 128, 256, 512], in: 2...512)
    let runs = try arguments.integer("runs", default: 30, in: 20...100_000)
    let batch = try arguments.integer("batch", default: 32, in: 1...1024)
    let threadSettings =
      try arguments.value("threads") == nil ? [1, 2] : [EncoderOptions.applyThreads(arguments)]
    let encoder = try EncoderOptions.load(arguments)
    let configuration = encoder.model.configuration
    guard lengths.allSatisfy({ $0 <= configuration.maxPositions }) else {
      throw .usage("--lengths must not exceed the encoder's \(configuration.maxPositions) positions")
    }
    let memory = ProcessMemory.read()
    let json = arguments.flag("json")
    let output = OutputWriter()
    if !json {
      try show(
        "encoder: \(configuration.layerCount) layers, hidden \(configuration.hiddenSize), "
          + "\(configuration.headCount) heads; \(ProcessInfo.processInfo.activeProcessorCount) CPUs\n"
          + "resident memory after loading: \(memory.residentMegabytes) MB\n", on: output)
    }
    for threads in threadSettings {
      BLAS.threadCount = threads
      if !json {
        try show(
          "\nBLAS threads: \(BLAS.threadCount)\n"
            + "tokens  b1 median ms  b1 min ms  b1 max ms  b1 GFLOP/s  b\(batch) ms/prompt  prompts/s  "
            + "b\(batch) GFLOP/s\n", on: output)
      }
      for tokens in lengths {
        let row = try measure(
          encoder: encoder, tokens: tokens, runs: runs, batch: batch, threads: BLAS.threadCount)
        try show(json ? jsonLine(row) : tableLine(row, batch: batch), on: output)
      }
    }
    if !json {
      let after = ProcessMemory.read()
      try show("\npeak resident memory: \(after.peakMegabytes) MB\n", on: output)
    }
    return 0
  }

  /// Synthetic ids: `[CLS]`, seeded ordinary vocabulary ids, `[SEP]`; `[tokens]`.
  static func prompt(tokens: Int, seed: UInt64, encoder: TextEncoder) -> [Int] {
    // Ordinary vocabulary ids: 1000 ..< 29000 for BERT's 30522 tokens (as tooling/bench/
    // pytorch_encoder.py), scaled down for tiny test vocabularies.
    let vocabulary = encoder.model.configuration.vocabularySize
    let low = vocabulary > 2000 ? 1000 : min(5, vocabulary - 1)
    let span = UInt64(max(1, min(28_000, vocabulary - low)))
    var state = seed
    var ids = [encoder.tokenizer.classifierID]
    for _ in 0..<(tokens - 2) {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      ids.append(low + Int((state >> 33) % span))
    }
    ids.append(encoder.tokenizer.separatorID)
    return ids
  }

  private static func measure(encoder: TextEncoder, tokens: Int, runs: Int, batch: Int, threads: Int)
    throws(CommandError) -> Row
  {
    let single = [[prompt(tokens: tokens, seed: 1, encoder: encoder)]]
    let many = (0..<batch).map { [prompt(tokens: tokens, seed: UInt64($0 + 2), encoder: encoder)] }
    do {
      for _ in 0..<3 { _ = try encoder.embed(windows: single) }
      var times: [Double] = []
      for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try encoder.embed(windows: single)
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
      }
      times.sort()
      _ = try encoder.embed(windows: many)
      var batched: [Double] = []
      for _ in 0..<max(3, min(10, 2000 / max(1, tokens))) {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try encoder.embed(windows: many)
        batched.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(batch))
      }
      batched.sort()
      return Row(
        threads: threads, tokens: tokens, medianMilliseconds: median(times),
        minimumMilliseconds: times.first ?? 0, maximumMilliseconds: times.last ?? 0, batch: batch,
        batchedMillisecondsPerPrompt: median(batched))
    } catch {
      throw .failure(error.message)
    }
  }

  /// Writes `text` and flushes at once (benchmarks print each row as it is measured).
  static func show(_ text: String, on output: OutputWriter) throws(CommandError) {
    try output.write(text)
    try output.flush()
  }

  /// The median of ascending values (0 for none).
  static func median(_ sorted: [Double]) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  }

  /// `value` with `digits` decimals, right-aligned in `width` columns.
  static func cell(_ value: Double, _ width: Int, _ digits: Int = 2) -> String {
    pad(String(format: "%.\(digits)f", value), width)
  }

  /// `text` right-aligned in `width` columns.
  static func pad(_ text: String, _ width: Int) -> String {
    String(repeating: " ", count: max(0, width - text.count)) + text
  }

  private static func tableLine(_ row: Row, batch: Int) -> String {
    pad(String(row.tokens), 6)
      + cell(row.medianMilliseconds, 14) + cell(row.minimumMilliseconds, 11)
      + cell(row.maximumMilliseconds, 11)
      + cell(row.gflops, 12, 1) + cell(row.batchedMillisecondsPerPrompt, 5 + "b\(batch) ms/prompt".count)
      + cell(row.promptsPerSecond, 11, 1) + cell(row.batchedGflops, 3 + "b\(batch) GFLOP/s".count, 1) + "\n"
  }

  private static func jsonLine(_ row: Row) -> String {
    "{\"threads\":\(row.threads),\"tokens\":\(row.tokens),\"median_ms\":\(JSONText.number(row.medianMilliseconds)),"
      + "\"min_ms\":\(JSONText.number(row.minimumMilliseconds)),\"max_ms\":\(JSONText.number(row.maximumMilliseconds)),"
      + "\"gflops\":\(JSONText.number(row.gflops)),\"batch\":\(row.batch),"
      + "\"batch_ms_per_prompt\":\(JSONText.number(row.batchedMillisecondsPerPrompt)),"
      + "\"batch_prompts_per_s\":\(JSONText.number(row.promptsPerSecond)),"
      + "\"batch_gflops\":\(JSONText.number(row.batchedGflops))}\n"
  }
}

/// Resident memory of this process, from `/proc/self/status` (zero where unavailable).
struct ProcessMemory {
  /// Current resident set size, MB.
  let residentMegabytes: Int
  /// Peak resident set size, MB.
  let peakMegabytes: Int

  static func read() -> ProcessMemory {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
      return ProcessMemory(residentMegabytes: 0, peakMegabytes: 0)
    }
    func field(_ name: String) -> Int {
      for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
        let digits = line.dropFirst(name.count + 1).filter(\.isNumber)
        return (Int(digits) ?? 0) / 1024
      }
      return 0
    }
    return ProcessMemory(residentMegabytes: field("VmRSS"), peakMegabytes: field("VmHWM"))
  }
}
