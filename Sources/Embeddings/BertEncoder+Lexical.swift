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
