import Detection
import Foundation
import LinearAlgebra

/// `curvalid score TEXT`: one JSON object as the service's reply, without `id` and `audit_id`.
enum ScoreCommand {
  static let help = """
    usage: curvalid score TEXT [OPTIONS]
           curvalid score [--input FILE] [--output FILE] [BATCH OPTIONS]

    Scores one prompt with a trained model bundle and prints one JSON object:
      {"decision":"reject","score":0.98,"threshold":0.42,"model":"c0ffee12","tokens":57,
       "features":{"prompt_lid":…,"curvature_conv1":…,"curvature_conv2":…},"latency_ms":7.9}
    With --explain the object also has "explanation": the tokens with the largest curvature
    contributions and the distances to the nearest benign reference prompts.
    Exit status: 0 when scored (accept or reject), 1 for an empty prompt or a model error.

    Without TEXT, scores many prompts (batch mode): JSONL (one object per line, the prompt in
    --field; other fields are copied to the reply), CSV (header row, the prompt column named by
    --field) or plain text (one prompt per line). Each record gets one reply in input order, with
    "line" (its input line); a bad record (invalid JSON or UTF-8, missing field, empty prompt, a
    prompt over --max-prompt-chars) becomes {"line":N,"error":{"code":…,"message":…}} and the run
    goes on. Records are read, scored and written in micro-batches, flushing after each. A summary
    goes to standard error (and a progress bar when it is a terminal). Exit status: 0 when every
    record was scored, 1 when any failed, 130 when interrupted by Ctrl-C (the output holds the
    finished batches).

    Conversations (JSONL only): a record with "messages":[{"role":…,"content":…},…] instead of a
    prompt is judged as `serve` judges it (docs/protocol.md, "Score a conversation"): each message
    whose role is not trusted is scored alone (content: a string, or text parts joined by line
    breaks). Its one reply has "decision" (reject when any judged message is), the top message's
    "score", "threshold" and "model", and "messages" (per judged message "index", "role" and a
    prompt reply's fields); a CSV row sums "tokens". Errors: wrong_type (a malformed message, or
    both a prompt field and "messages"), missing_prompt (no message to judge), too_many_messages
    (over 64 judged), prompt_too_long (a judged message over --max-prompt-chars). Summary counts
    and the exit status count a conversation as one record.

    options:
      --model BUNDLE  model bundle (default: $CURVALID_MODEL, else the config file's model, else
                      server/models/default.safetensors)
      --threshold T   reject when the score reaches T (0 to 1) instead of the bundle's calibrated
                      threshold: an operating point for another false-positive rate (see
                      docs/evaluation.md, "Operating points"; default: $CURVALID_THRESHOLD, else
                      the config file's threshold)
      --explain       add the explanation
    \(ScoreSettings.help)

    batch options:
      --input FILE          prompts to score (default: standard input)
      --output FILE         where to write replies (default: standard output)
      --format FORMAT       input format: jsonl, csv or text (default: by --input extension, else jsonl)
      --output-format FMT   jsonl or csv (default: csv when --output ends in .csv, else jsonl); CSV
                            columns: line, decision, score, threshold, tokens, error, input columns
      --field NAME          prompt field or column (default: text, then prompt)
      --trusted-roles LIST  JSONL messages records: roles whose messages are not judged (default:
                            $CURVALID_TRUSTED_ROLES, else the config file's trusted_roles, else
                            system,developer,assistant; none: judge every message), as in serve
      --max-prompt-chars N  a prompt (or judged message) of more than N Unicode scalars becomes a
                            prompt_too_long error record, as serve answers it (default:
                            $CURVALID_MAX_PROMPT_CHARS, else the config file's max_prompt_chars,
                            else no limit; 1 to 67108864)
      --batch N             micro-batch size (default 32)
      --resume              continue into an existing --output FILE: keep its complete records,
                            cut a partial last one, and skip that many input records
    \(EncoderOptions.help)
      -h, --help      show this help

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(
      raw,
      options: EncoderOptions.names.union(["model", "threshold"]).union(ScoreSettings.optionNames).union(
        BatchScoring.options),
      flags: BatchScoring.flags.union(["explain"]))
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    if arguments.positional.isEmpty { return try BatchScoring.run(arguments) }
    guard arguments.positional.count == 1, let text = arguments.positional.first else {
      throw .usage(
        "score takes at most one TEXT argument (quote the prompt), got \(arguments.positional.count)")
    }
    if let option = BatchScoring.options.union(BatchScoring.flags).sorted().first(where: {
      arguments.value($0) != nil || arguments.flag($0)
    }) {
      throw .usage("--\(option) is for batch mode (without TEXT)")
    }
    let settings = try ScoreSettings(arguments: arguments, environment: ProcessInfo.processInfo.environment)
    BLAS.threadCount = settings.threads
    let detector = try ModelLoading.loadDetector(
      bundlePath: settings.model, encoderDirectory: settings.encoder, threshold: settings.threshold)
    let clock = ContinuousClock()
    let started = clock.now
    guard let result = detector.score([text], explain: arguments.flag("explain")).first else {
      throw .failure("the detector returned no result")
    }
    let elapsed = clock.now - started
    let milliseconds =
      Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15
    switch result {
    case .failure(let error):
      throw .failure(error.message)
    case .success(let decision):
      let output = OutputWriter()
      try output.write(json(decision, model: detector.modelID, latency: milliseconds) + "\n")
      try output.flush()
      return 0
    }
  }

  /// The reply object of DESIGN §4 without `id` and `audit_id`.
  static func json(_ decision: Decision, model: String, latency: Double) -> String {
    var fields = [
      "\"decision\":\(JSONText.string(decision.verdict.rawValue))",
      "\"score\":\(JSONText.number(decision.score))",
      "\"threshold\":\(JSONText.number(decision.threshold))",
      "\"model\":\(JSONText.string(model))",
      "\"tokens\":\(decision.tokens)",
      "\"features\":{"
        + decision.features.map { "\(JSONText.string($0.name)):\(JSONText.number($0.value))" }.joined(
          separator: ",")
        + "}",
      "\"latency_ms\":\(JSONText.number((latency * 1000).rounded() / 1000))",
    ]
    if let explanation = decision.explanation {
      let tokens = explanation.topTokens.map {
        "{\"token\":\(JSONText.string($0.token)),\"position\":\($0.position),\"value\":\(JSONText.number($0.value))}"
      }
      let distances = explanation.nearestBenignDistances.map(JSONText.number)
      fields.append(
        "\"explanation\":{\"top_tokens\":[\(tokens.joined(separator: ","))],"
          + "\"nearest_benign_distances\":[\(distances.joined(separator: ","))],"
          + "\"reading\":\(explanation.reading.map(JSONText.string) ?? "null")}")
    }
    return "{" + fields.joined(separator: ",") + "}"
  }
}
