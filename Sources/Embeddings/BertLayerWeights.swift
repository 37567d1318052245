import LinearAlgebra

/// The weights of one BERT transformer layer, in the encoder's own layouts.
///
/// Linear weights are `[in, out]` (the transpose of PyTorch's `Linear.weight`) so that each linear
/// layer is one non-transposed `cblas_sgemm`; the query, key and value projections are fused into
/// one `[hidden, 3·hidden]` matrix whose columns are `Q | K | V`.
public struct BertLayerWeights: Sendable, Equatable {
  /// `[hidden, 3·hidden]`: query, key and value projections side by side.
  public var qkvWeight: [Float]
  /// `[3·hidden]`.
  public var qkvBias: [Float]
  /// `[hidden, hidden]`.
  public var attentionOutputWeight: [Float]
  /// `[hidden]`.
  public var attentionOutputBias: [Float]
  /// `[hidden]`: scale of the layer norm after attention.
  public var attentionNormGamma: [Float]
  /// `[hidden]`: shift of the layer norm after attention.
  public var attentionNormBeta: [Float]
  /// `[hidden, intermediate]`.
  public var intermediateWeight: [Float]
  /// `[intermediate]`.
  public var intermediateBias: [Float]
  /// `[intermediate, hidden]`.
  public var outputWeight: [Float]
  /// `[hidden]`.
  public var outputBias: [Float]
  /// `[hidden]`: scale of the layer norm after the feed-forward block.
  public var outputNormGamma: [Float]
  /// `[hidden]`: shift of the layer norm after the feed-forward block.
  public var outputNormBeta: [Float]

  /// Creates layer weights from tensors in the layouts above.
  public init(
    qkvWeight: [Float], qkvBias: [Float], attentionOutputWeight: [Float], attentionOutputBias: [Float],
    attentionNormGamma: [Float], attentionNormBeta: [Float], intermediateWeight: [Float],
    intermediateBias: [Float], outputWeight: [Float], outputBias: [Float], outputNormGamma: [Float],
    outputNormBeta: [Float]
  ) {
    self.qkvWeight = qkvWeight
    self.qkvBias = qkvBias
    self.attentionOutputWeight = attentionOutputWeight
    self.attentionOutputBias = attentionOutputBias
    self.attentionNormGamma = attentionNormGamma
    self.attentionNormBeta = attentionNormBeta
    self.intermediateWeight = intermediateWeight
    self.intermediateBias = intermediateBias
    self.outputWeight = outputWeight
    self.outputBias = outputBias
    self.outputNormGamma = outputNormGamma
    self.outputNormBeta = outputNormBeta
  }

  /// The tensors by name with their shapes, in a fixed order (the order `init(named:)` reads).
  /// - Parameter configuration: The encoder shape the weights belong to.
  /// - Returns: `(name, shape, values)` for each of the twelve tensors.
  public func namedTensors(configuration c: BertConfiguration) -> [(
    name: String, shape: [Int], values: [Float]
  )] {
    let h = c.hiddenSize
    let i = c.intermediateSize
    return [
      ("qkv.weight", [h, 3 * h], qkvWeight), ("qkv.bias", [3 * h], qkvBias),
      ("attention_output.weight", [h, h], attentionOutputWeight),
      ("attention_output.bias", [h], attentionOutputBias),
      ("attention_norm.gamma", [h], attentionNormGamma), ("attention_norm.beta", [h], attentionNormBeta),
      ("intermediate.weight", [h, i], intermediateWeight), ("intermediate.bias", [i], intermediateBias),
      ("output.weight", [i, h], outputWeight), ("output.bias", [h], outputBias),
      ("output_norm.gamma", [h], outputNormGamma), ("output_norm.beta", [h], outputNormBeta),
    ]
  }

  /// Reads the tensors `namedTensors(configuration:)` lists.
  /// - Parameters:
  ///   - configuration: The encoder shape.
  ///   - tensor: Returns the values stored under a name (from that list), or `nil` when absent.
  /// - Throws: `EmbeddingsError(.missingTensor)` for an absent tensor, `.shapeMismatch` for a
  ///   tensor of the wrong size.
  public init(
    configuration c: BertConfiguration, tensor: (String) -> [Float]?
  ) throws(EmbeddingsError) {
    var values: [String: [Float]] = [:]
    let empty = BertLayerWeights(
      qkvWeight: [], qkvBias: [], attentionOutputWeight: [], attentionOutputBias: [], attentionNormGamma: [],
      attentionNormBeta: [], intermediateWeight: [], intermediateBias: [], outputWeight: [], outputBias: [],
      outputNormGamma: [], outputNormBeta: [])
    for (name, shape, _) in empty.namedTensors(configuration: c) {
      guard let found = tensor(name) else {
        throw EmbeddingsError(.missingTensor, "layer tensor \(name) is missing")
      }
      let expected = shape.reduce(1, *)
      guard found.count == expected else {
        throw EmbeddingsError(
          .shapeMismatch, "layer tensor \(name) has \(found.count) values; shape \(shape) needs \(expected)")
      }
      values[name] = found
    }
    func v(_ name: String) -> [Float] { values[name] ?? [] }
    self.init(
      qkvWeight: v("qkv.weight"), qkvBias: v("qkv.bias"), attentionOutputWeight: v("attention_output.weight"),
      attentionOutputBias: v("attention_output.bias"), attentionNormGamma: v("attention_norm.gamma"),
      attentionNormBeta: v("attention_norm.beta"), intermediateWeight: v("intermediate.weight"),
      intermediateBias: v("intermediate.bias"), outputWeight: v("output.weight"),
      outputBias: v("output.bias"),
      outputNormGamma: v("output_norm.gamma"), outputNormBeta: v("output_norm.beta"))
  }
}

extension BertEncoder {
  /// Runs the embeddings and the bottom `layerCount` layers only.
  ///
  /// `hiddenStates(batch:layerCount: configuration.layerCount)` equals `encode(batch:)`; feeding the
  /// result to `continueEncoding(_:fromLayer: layerCount)` finishes the pass.
  /// - Parameters:
  ///   - batch: Token-id sequences, each `1 ≤ count ≤ maxPositions`.
  ///   - layerCount: Layers to run, `0 … layerCount` of the encoder (0: the embedding output).
  /// - Returns: One `[tokens_i, hidden]` matrix per sequence.
  /// - Throws: `EmbeddingsError(.invalidInput)` for bad sequences or a layer count out of range.
  public func hiddenStates(batch: [[Int]], layerCount: Int) throws(EmbeddingsError) -> [Matrix] {
    guard (0...layers.count).contains(layerCount) else {
      throw EmbeddingsError(.invalidInput, "layer count \(layerCount) is outside 0...\(layers.count)")
    }
    return try forward(batch: batch, layers: 0..<layerCount)
  }

  /// Runs layers `fromLayer…` on hidden states from `hiddenStates(batch:layerCount: fromLayer)`.
  /// - Parameters:
  ///   - states: One `[tokens_i, hidden]` matrix per sequence.
  ///   - fromLayer: The first layer to run.
  /// - Returns: `last_hidden_state` per sequence, `[tokens_i, hidden]`.
  /// - Throws: `EmbeddingsError(.invalidInput)` for a bad shape or layer index.
  public func continueEncoding(_ states: [Matrix], fromLayer: Int) throws(EmbeddingsError) -> [Matrix] {
    guard (0...layers.count).contains(fromLayer) else {
      throw EmbeddingsError(.invalidInput, "layer \(fromLayer) is outside 0...\(layers.count)")
    }
    let c = configuration
    for state in states {
      guard state.columns == c.hiddenSize, state.rows >= 1, state.rows <= c.maxPositions else {
        throw EmbeddingsError(
          .invalidInput,
          "hidden states [\(state.rows), \(state.columns)]; the encoder takes 1 to \(c.maxPositions) rows "
            + "of \(c.hiddenSize)")
      }
    }
    if states.isEmpty { return [] }
    var workspace = Workspace(configuration: c, lengths: states.map(\.rows))
    workspace.hidden = states.flatMap(\.storage)
    for layer in layers[fromLayer...] { run(layer, on: &workspace) }
    return workspace.split()
  }

  /// A copy of this encoder with its top `layers.count` layers replaced (fine-tuned weights).
  /// - Parameter top: The new top layers, bottom first; shapes as `BertLayerWeights` documents.
  /// - Throws: `EmbeddingsError(.shapeMismatch)` when a tensor has the wrong size, or
  ///   `.invalidInput` when there are more layers than the encoder has.
  public func replacingTopLayers(with top: [BertLayerWeights]) throws(EmbeddingsError) -> BertEncoder {
    guard top.count <= layers.count else {
      throw EmbeddingsError(
        .invalidInput, "\(top.count) replacement layers for an encoder of \(layers.count)")
    }
    for layer in top {
      for (name, shape, values) in layer.namedTensors(configuration: configuration)
      where values.count != shape.reduce(1, *) {
        throw EmbeddingsError(
          .shapeMismatch, "replacement tensor \(name) has \(values.count) values for shape \(shape)")
      }
    }
    return BertEncoder(
      copying: self, layers: Array(layers.dropLast(top.count)) + top)
  }
}
