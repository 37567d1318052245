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

  /// The tensors by name with their shapes, in a fixed order (the order the readers use).
  /// - Parameters:
  ///   - hiddenSize: The encoder width.
  ///   - intermediateSize: The feed-forward width (default: `intermediateBias.count`).
  /// - Returns: `(name, shape, values)` for each of the twelve tensors.
  public func namedTensors(hiddenSize h: Int, intermediateSize: Int? = nil) -> [(
    name: String, shape: [Int], values: [Float]
  )] {
    let i = intermediateSize ?? intermediateBias.count
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

  /// The tensors by name with the shapes of an encoder configuration.
  public func namedTensors(configuration c: BertConfiguration) -> [(
    name: String, shape: [Int], values: [Float]
  )] {
    namedTensors(hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize)
  }

  /// Whether every tensor has the size its shape needs.
  func check(hiddenSize: Int, intermediateSize: Int?) throws(EmbeddingsError) {
    for (name, shape, values) in namedTensors(hiddenSize: hiddenSize, intermediateSize: intermediateSize)
    where values.count != shape.reduce(1, *) {
      throw EmbeddingsError(
        .shapeMismatch,
        "layer tensor \(name) has \(values.count) values; shape \(shape) needs \(shape.reduce(1, *))")
    }
  }

  /// Reads the twelve tensors `namedTensors(hiddenSize:)` lists; the feed-forward width is that
  /// of `intermediate.bias`.
  /// - Parameters:
  ///   - hiddenSize: The encoder width.
  ///   - tensor: Returns the values stored under a name, or `nil` when absent.
  /// - Throws: `EmbeddingsError(.missingTensor)` for an absent tensor, `.shapeMismatch` for a
  ///   tensor of the wrong size.
  public init(hiddenSize: Int, tensor: (String) -> [Float]?) throws(EmbeddingsError) {
    func read(_ name: String) throws(EmbeddingsError) -> [Float] {
      guard let values = tensor(name) else {
        throw EmbeddingsError(.missingTensor, "layer tensor \(name) is missing")
      }
      return values
    }
    self.init(
      qkvWeight: try read("qkv.weight"), qkvBias: try read("qkv.bias"),
      attentionOutputWeight: try read("attention_output.weight"),
      attentionOutputBias: try read("attention_output.bias"),
      attentionNormGamma: try read("attention_norm.gamma"),
      attentionNormBeta: try read("attention_norm.beta"),
      intermediateWeight: try read("intermediate.weight"), intermediateBias: try read("intermediate.bias"),
      outputWeight: try read("output.weight"), outputBias: try read("output.bias"),
      outputNormGamma: try read("output_norm.gamma"), outputNormBeta: try read("output_norm.beta"))
    try check(hiddenSize: hiddenSize, intermediateSize: nil)
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
      try layer.check(hiddenSize: configuration.hiddenSize, intermediateSize: configuration.intermediateSize)
    }
    return BertEncoder(
      copying: self, layers: Array(layers.dropLast(top.count)) + top)
  }
}

extension BertEncoder {
  /// A copy of this encoder that stops after its bottom `layerCount` layers: its `encode` returns
  /// `hiddenStates(batch:layerCount:)`, so the frozen part of a fine-tuned encoder can be embedded
  /// and cached like any encoder.
  /// - Throws: `EmbeddingsError(.invalidInput)` for a layer count outside `0…layers.count`.
  public func keepingBottomLayers(_ layerCount: Int) throws(EmbeddingsError) -> BertEncoder {
    guard (0...layers.count).contains(layerCount) else {
      throw EmbeddingsError(.invalidInput, "layer count \(layerCount) is outside 0...\(layers.count)")
    }
    return BertEncoder(copying: self, layers: Array(layers.prefix(layerCount)))
  }
}
