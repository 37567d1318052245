/// What the detector concluded about one prompt: the reply's content, before serialisation.
///
/// Field meanings follow the wire protocol (DESIGN.md §4): `score` is the model's probability that
/// the prompt is adversarial, `threshold` the calibrated cut, `decision` is `reject` when
/// `score ≥ threshold`.
public struct Decision: Sendable, Equatable {
  /// The two outcomes.
  public enum Verdict: String, Sendable, Equatable {
    /// Let the prompt through.
    case accept
    /// Stop the prompt.
    case reject
  }

  /// One named feature value, in the model's feature order.
  public struct Feature: Sendable, Equatable {
    /// The feature's wire name, e.g. `prompt_lid`, `curvature_conv1`.
    public let name: String
    /// Its value for this prompt.
    public let value: Float

    /// Creates a feature value.
    public init(name: String, value: Float) {
      self.name = name
      self.value = value
    }
  }

  /// Optional detail for `explain` requests.
  public struct Explanation: Sendable, Equatable {
    /// Tokens with the largest curvature contributions: token text, position, contribution.
    public let topTokens: [(token: String, position: Int, value: Float)]
    /// Distances to the nearest benign reference prompts, ascending.
    public let nearestBenignDistances: [Float]
    /// The prompt as the detector also read it when a reader would read it differently from the
    /// tokenizer (decoded, folded, respaced: `WordPieceTokenizer.alternateReading`), cut to
    /// `Detector.readingShown` characters; `nil` when it has no such reading.
    public let reading: String?

    /// Creates an explanation.
    public init(
      topTokens: [(token: String, position: Int, value: Float)], nearestBenignDistances: [Float],
      reading: String? = nil
    ) {
      self.topTokens = topTokens
      self.nearestBenignDistances = nearestBenignDistances
      self.reading = reading
    }

    public static func == (lhs: Explanation, rhs: Explanation) -> Bool {
      lhs.nearestBenignDistances == rhs.nearestBenignDistances && lhs.reading == rhs.reading
        && lhs.topTokens.elementsEqual(rhs.topTokens) {
          $0.token == $1.token && $0.position == $1.position && $0.value == $1.value
        }
    }
  }

  /// Accept or reject.
  public let verdict: Verdict
  /// Probability of "adversarial", in [0, 1].
  public let score: Float
  /// The model's calibrated threshold.
  public let threshold: Float
  /// Token rows the encoder produced (all windows, with `[CLS]`/`[SEP]`).
  public let tokens: Int
  /// The features the classifier saw that have wire names (may be empty for learned blocks).
  public let features: [Feature]
  /// Present when an explanation was asked for.
  public let explanation: Explanation?

  /// Creates a decision; `verdict` follows from `score` and `threshold`.
  public init(
    score: Float, threshold: Float, tokens: Int, features: [Feature], explanation: Explanation? = nil
  ) {
    self.verdict = score >= threshold ? .reject : .accept
    self.score = score
    self.threshold = threshold
    self.tokens = tokens
    self.features = features
    self.explanation = explanation
  }
}

/// Anything that scores prompts: the trained `Detector`, or a stand-in in tests of the service.
///
/// Implementations are safe to call from several threads at once.
public protocol PromptScoring: Sendable {
  /// A short identifier of the model (the bundle digest's first 8 hex digits).
  var modelID: String { get }

  /// Scores a batch of prompts; each prompt succeeds or fails on its own.
  ///
  /// - Parameters:
  ///   - prompts: The prompt texts.
  ///   - explain: Whether to compute explanations.
  /// - Returns: One result per prompt, in order.
  func score(_ prompts: [String], explain: Bool) -> [Result<Decision, DetectionError>]
}

/// The one error type of the `Detection` module.
public struct DetectionError: Error, CustomStringConvertible, Sendable, Equatable {
  /// The kinds of failure.
  public enum Code: String, Sendable, Equatable {
    /// The prompt is empty (or only whitespace).
    case emptyPrompt
    /// The prompt is longer than the configured limit.
    case promptTooLong
    /// The prompt bytes are not valid UTF-8.
    case invalidUTF8
    /// A model bundle is missing, malformed, of another version, or made for another encoder.
    case invalidBundle
    /// A training or evaluation input (corpus, configuration) is unusable.
    case invalidInput
    /// A file could not be read or written.
    case io
    /// Something that should not happen; the message says what.
    case internalError
  }

  /// What kind of failure this is.
  public let code: Code
  /// One line for people.
  public let message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// The message.
  public var description: String { message }
}
