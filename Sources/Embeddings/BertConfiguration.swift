import Foundation

/// The shape of a BERT encoder, read from a Hugging Face `config.json`.
///
/// Field names are camelCase here and map to the Hugging Face snake_case keys through `CodingKeys`.
public struct BertConfiguration: Codable, Sendable, Equatable {
  /// Number of rows of the word-embedding table.
  public var vocabularySize: Int
  /// Width of every token vector (`d`).
  public var hiddenSize: Int
  /// Number of transformer layers.
  public var layerCount: Int
  /// Number of attention heads; `hiddenSize` must be a multiple of it.
  public var headCount: Int
  /// Width of the feed-forward layer.
  public var intermediateSize: Int
  /// Number of learned positions: the longest sequence one forward pass accepts.
  public var maxPositions: Int
  /// Number of token-type (segment) embeddings.
  public var typeVocabularySize: Int
  /// Layer-norm epsilon.
  public var layerNormEpsilon: Float
  /// Activation of the feed-forward layer; only the exact `gelu` (erf) is supported.
  public var hiddenActivation: String

  enum CodingKeys: String, CodingKey {
    case vocabularySize = "vocab_size"
    case hiddenSize = "hidden_size"
    case layerCount = "num_hidden_layers"
    case headCount = "num_attention_heads"
    case intermediateSize = "intermediate_size"
    case maxPositions = "max_position_embeddings"
    case typeVocabularySize = "type_vocab_size"
    case layerNormEpsilon = "layer_norm_eps"
    case hiddenActivation = "hidden_act"
  }

  /// Width of one attention head: `hiddenSize / headCount`.
  public var headSize: Int { hiddenSize / headCount }

  /// Reads and validates a `config.json`.
  /// - Throws: `EmbeddingsError` (`.fileNotFound`, `.invalidConfiguration`).
  public static func load(from url: URL) throws -> BertConfiguration {
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw EmbeddingsError(.fileNotFound, "encoder configuration not found: \(url.path)")
    }
    let configuration: BertConfiguration
    do {
      configuration = try JSONDecoder().decode(BertConfiguration.self, from: Data(contentsOf: url))
    } catch {
      throw EmbeddingsError(.invalidConfiguration, "cannot read encoder configuration \(url.path): \(error)")
    }
    try configuration.validate()
    return configuration
  }

  /// Checks that the numbers describe an encoder this implementation can run.
  /// - Throws: `EmbeddingsError(.invalidConfiguration)` naming the offending field.
  public func validate() throws {
    func require(_ condition: Bool, _ message: String) throws {
      if !condition { throw EmbeddingsError(.invalidConfiguration, "encoder configuration: \(message)") }
    }
    try require(vocabularySize > 0, "vocab_size must be positive")
    try require(hiddenSize > 0 && headCount > 0, "hidden_size and num_attention_heads must be positive")
    try require(
      hiddenSize % headCount == 0, "hidden_size \(hiddenSize) is not a multiple of \(headCount) heads")
    try require(layerCount >= 0 && intermediateSize > 0, "layer counts and sizes must be positive")
    try require(maxPositions >= 3, "max_position_embeddings must be at least 3")
    try require(typeVocabularySize >= 1, "type_vocab_size must be at least 1")
    try require(layerNormEpsilon > 0, "layer_norm_eps must be positive")
    try require(hiddenActivation == "gelu", "hidden_act \(hiddenActivation) is not supported (only gelu)")
  }
}
