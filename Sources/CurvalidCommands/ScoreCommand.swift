import Detection
import Foundation

/// `curvalid score TEXT`: one JSON object as the service's reply, without `id` and `audit_id`.
enum ScoreCommand {
  static let help = """
    usage: curvalid score TEXT [OPTIONS]

    Scores one prompt with a trained model bundle and prints one JSON object:
      {"decision":"reject","score":0.98,"threshold":0.42,"model":"c0ffee12","tokens":57,
       "features":{"prompt_lid":…,"curvature_conv1":…,"curvature_conv2":…},"latency_ms":7.9}
    With --explain the object also has "explanation": the tokens with the largest curvature
    contributions and the distances to the nearest benign reference prompts.
    Exit status: 0 when scored (accept or reject), 1 for an empty prompt or a model error.

    options:
      --model BUNDLE  model bundle (default: $CURVALID_MODEL, else server/models/default.safetensors)
      --explain       add the explanation
    \(EncoderOptions.help)
      -h, --help      show this help

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(raw, options: EncoderOptions.names.union(["model"]), flags: ["explain"])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard arguments.positional.count == 1, let text = arguments.positional.first else {
      throw .usage(
        "score takes exactly one TEXT argument (quote the prompt), got \(arguments.positional.count)")
    }
    try EncoderOptions.applyThreads(arguments)
    let detector = try ModelLoading.loadDetector(
      bundlePath: arguments.value("model"), encoderDirectory: arguments.value("encoder"))
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
          + "\"nearest_benign_distances\":[\(distances.joined(separator: ","))]}")
    }
    return "{" + fields.joined(separator: ",") + "}"
  }
}
