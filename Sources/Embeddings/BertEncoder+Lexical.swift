import LinearAlgebra

extension BertEncoder {
  /// The encoder's own input embedding of each token, without its position and without context:
  /// `LayerNorm(word[id] + tokenType[0])` with the embedding layer's norm, one row per id.
  ///
  /// The last hidden state mixes every token with the whole sequence (all-MiniLM-L6-v2 is trained
  /// for mean pooling), so a phrase appended to a long text reads like that text there; these rows
  /// carry the token alone, for detectors that look for phrases wherever they sit.
  ///
  /// - Parameter ids: Token ids, `[tokens]` (any count, including 0).
  /// - Returns: `[tokens, hidden]`.
  /// - Throws: `EmbeddingsError(.invalidInput)` for an id outside the vocabulary.
  /// - Complexity: `O(tokens · hidden)`; no matrix products.
  public func lexicalRows(ids: [Int]) throws(EmbeddingsError) -> Matrix {
    let h = configuration.hiddenSize
    try checkVocabulary(ids)
    var storage = [Float](repeating: 0, count: ids.count * h)
    storage.withUnsafeMutableBufferPointer { x in
      wordEmbeddings.withUnsafeBufferPointer { words in
        tokenTypeEmbedding.withUnsafeBufferPointer { type in
          for (row, id) in ids.enumerated() {
            for j in 0..<h { x[row * h + j] = words[id * h + j] + type[j] }
          }
        }
      }
    }
    Self.normalize(
      &storage, rows: ids.count, gamma: embeddingNormGamma, beta: embeddingNormBeta,
      epsilon: configuration.layerNormEpsilon)
    return Matrix(rows: ids.count, columns: h, storage: storage)
  }
}

extension BertEncoder {
  /// The mean of each prompt's rows after the encoder's bottom `layerCount` layers.
  ///
  /// A prompt's ids are its windows concatenated (`[CLS] … [SEP]` each, every window but the last
  /// `maxPositions` long, as `TextEncoder` cuts them); each window runs through the embeddings and
  /// the bottom layers on its own (`hiddenStates(batch:layerCount:)`), and the rows of all the
  /// prompt's windows are averaged.
  ///
  /// - Parameters:
  ///   - prompts: Per prompt, its token ids (`[tokens_i]`; an empty list gives a zero row).
  ///   - layerCount: How many layers, `0 ... layers.count`.
  /// - Returns: `[prompts.count, hidden]`.
  /// - Throws: `EmbeddingsError(.invalidInput)` for a bad layer count or id.
  public func lowerLayerMeans(_ prompts: [[Int]], layerCount: Int) throws(EmbeddingsError) -> Matrix {
    let h = configuration.hiddenSize
    let window = configuration.maxPositions
    var means = Matrix(rows: prompts.count, columns: h)
    // Windows of several prompts are packed into calls of at most `TextEncoder.tokensPerModelCall`
    // tokens, as the encoder's own callers pack them.
    var pending: [(prompt: Int, ids: [Int])] = []
    var pendingTokens = 0
    func flush() throws(EmbeddingsError) {
      guard !pending.isEmpty else { return }
      let states = try hiddenStates(batch: pending.map(\.ids), layerCount: layerCount)
      for (entry, state) in zip(pending, states) {
        let sums = state.columnSums()
        for j in 0..<h { means[entry.prompt, j] += sums[j] }
      }
      pending = []
      pendingTokens = 0
    }
    for (index, ids) in prompts.enumerated() {
      var start = 0
      while start < ids.count {
        let end = min(start + window, ids.count)
        if pendingTokens + (end - start) > TextEncoder.tokensPerModelCall { try flush() }
        pending.append((index, Array(ids[start..<end])))
        pendingTokens += end - start
        start = end
      }
    }
    try flush()
    // Sums first, then one scale per prompt: the order `TextEncoder.embed(windows:meanAfterLayers:)` uses.
    for (index, ids) in prompts.enumerated() where !ids.isEmpty {
      let scale = 1 / Float(ids.count)
      for j in 0..<h { means[index, j] *= scale }
    }
    return means
  }
}
