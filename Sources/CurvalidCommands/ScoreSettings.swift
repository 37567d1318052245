import Foundation

/// The settings `curvalid score` shares with `serve`, so that one config file makes offline
/// scoring decide as the service does: the model, the threshold, the encoder, the BLAS threads,
/// the trusted roles of a conversation and (batch mode) the longest prompt.
///
/// Each is taken from its option, else its `CURVALID_*` variable (as `serve` names them; an empty
/// one is unset), else the config file (`--config FILE`, else `$CURVALID_CONFIG`: `serve`'s JSON
/// file, read and checked as `serve` reads it; its service-only keys, such as `listen` or `audit`,
/// are ignored), else the built-in default.
struct ScoreSettings: Equatable {
  /// The model bundle path (`nil`: `$CURVALID_MODEL`, else the default bundle).
  var model: String?
  /// The threshold replacing the bundle's (`nil`: the bundle's).
  var threshold: Float?
  /// The encoder directory (`nil`: `$CURVALID_ENCODER_DIR`, else the verified default encoder).
  var encoder: String?
  /// BLAS threads.
  var threads: Int
  /// The trusted-roles list as written (`serve`'s syntax; `nil`: `serve`'s default).
  var trustedRoles: String?
  /// Whether `trustedRoles` came from the command line (an error with CSV or text input).
  var trustedRolesFromOption: Bool
  /// Batch mode: the longest prompt (or judged message) in Unicode scalars, as `serve`'s
  /// `max_prompt_chars` (`nil`: no limit).
  var maxPromptChars: Int?
  /// The config file read, if any.
  var configFile: String?

  /// The option that names the config file.
  static let optionNames: Set<String> = ["config"]

  /// Help lines for `--config`.
  static let help = """
      --config FILE   serve's JSON config file (default: $CURVALID_CONFIG): score takes its
                      model, threshold, encoder, threads, trusted_roles and max_prompt_chars
                      (options and CURVALID_* variables win over it) and ignores the
                      service-only keys
    """

  /// Resolves the settings.
  ///
  /// - Throws: `CommandError.usage` for a bad value in any layer or a bad config file,
  ///   `.failure` for an unreadable one.
  init(arguments: Arguments, environment: [String: String]) throws(CommandError) {
    func variable(_ name: String) -> String? {
      environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
    configFile = arguments.value("config") ?? variable("CURVALID_CONFIG")
    let file = try configFile.map { path throws(CommandError) in try ServeConfiguration.readFile(path) }
    let fileLabel = configFile.map { "config file \($0) key" } ?? ""
    // A variable is left to the loaders that read it (`ModelLoading`, `EncoderStore`): the file's
    // value only fills in when neither the option nor the variable is set.
    model = arguments.value("model") ?? (variable("CURVALID_MODEL") == nil ? file?.model : nil)
    encoder = arguments.value("encoder") ?? (variable("CURVALID_ENCODER_DIR") == nil ? file?.encoder : nil)
    if let text = arguments.value("threshold") {
      threshold = try ModelLoading.threshold(text)
    } else if let text = variable("CURVALID_THRESHOLD") {
      threshold = try ModelLoading.threshold(text, source: "CURVALID_THRESHOLD")
    } else {
      threshold = try ModelLoading.threshold(
        file?.threshold.map { "\($0)" }, source: "\(fileLabel) threshold")
    }
    if let value = file?.threads, !(1...64).contains(value) {
      throw .usage("\(fileLabel) threads must be an integer from 1 to 64, got '\(value)'")
    }
    threads = try EncoderOptions.threads(arguments, configured: file?.threads)
    trustedRolesFromOption = arguments.value("trusted-roles") != nil
    maxPromptChars = try Self.maxPromptChars(
      [
        ("--max-prompt-chars", arguments.value("max-prompt-chars")),
        ("CURVALID_MAX_PROMPT_CHARS", variable("CURVALID_MAX_PROMPT_CHARS")),
        ("\(fileLabel) max_prompt_chars", file?.maxPromptChars.map(String.init)),
      ])
    trustedRoles =
      arguments.value("trusted-roles") ?? variable("CURVALID_TRUSTED_ROLES")
      ?? file?.trustedRoles.map { $0.list.isEmpty ? "none" : $0.list.joined(separator: ",") }
  }

  /// The largest prompt `serve` accepts as a limit (`max_prompt_chars`).
  static let promptCharsRange = 1...(64 << 20)

  /// The first layer that sets the prompt limit, checked against `promptCharsRange`.
  private static func maxPromptChars(_ layers: [(name: String, text: String?)]) throws(CommandError) -> Int? {
    guard let (name, text) = layers.first(where: { $0.text != nil }).map({ ($0.name, $0.text ?? "") }) else {
      return nil
    }
    guard let value = Int(text), promptCharsRange.contains(value) else {
      throw .usage(
        "\(name) must be an integer from \(promptCharsRange.lowerBound) to \(promptCharsRange.upperBound), "
          + "got '\(text)'")
    }
    return value
  }
}
