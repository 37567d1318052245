import Foundation
import LinearAlgebra

/// A BERT encoder (Devlin et al. 2019, "BERT: Pre-training of deep bidirectional transformers")
/// evaluated in float32 over OpenBLAS, matching Hugging Face `BertModel.last_hidden_state`.
///
/// Weights are immutable after loading, so one encoder can serve concurrent callers; every call
/// allocates its own workspace. Linear-layer weights are stored pre-transposed as `[in, out]` so that
/// each linear layer is one non-transposed `cblas_sgemm`, and the query, key and value projections
/// are fused into a single `[hidden, 3·hidden]` product.
public final class BertEncoder: Sendable {
  /// The encoder's shape.
  public let configuration: BertConfiguration
  let wordEmbeddings: [Float]  // [vocab, hidden]
  let positionEmbeddings: [Float]  // [positions, hidden]
  let tokenTypeEmbedding: [Float]  // [hidden], type 0
  let embeddingNormGamma: [Float]
  let embeddingNormBeta: [Float]
  /// The transformer layers, bottom first.
  public let layers: [BertLayerWeights]

  /// Loads an encoder from a directory holding `config.json` and `model.safetensors`.
  /// - Throws: `EmbeddingsError` when a file is missing, malformed, or a tensor is absent or misshapen.
  public convenience init(directory: URL) throws {
    let configuration = try BertConfiguration.load(from: directory.appendingPathComponent("config.json"))
    let weights = try SafetensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
    try self.init(configuration: configuration, weights: weights)
  }

  /// Builds an encoder from a configuration and a weights file with Hugging Face `BertModel` names
  /// (an optional `bert.` prefix is accepted).
  /// - Throws: `EmbeddingsError(.missingTensor / .shapeMismatch)`.
  public init(configuration: BertConfiguration, weights: SafetensorsFile) throws {
    try configuration.validate()
    self.configuration = configuration
    let h = configuration.hiddenSize
    let inter = configuration.intermediateSize
    let prefix = weights.info("embeddings.word_embeddings.weight") == nil ? "bert." : ""

    func tensor(_ name: String, _ shape: [Int]) throws -> [Float] {
      try weights.floats(prefix + name, shape: shape)
    }
    /// A Hugging Face linear weight `[out, in]`, returned transposed as `[in, out]`.
    func linear(_ name: String, out: Int, in: Int) throws -> [Float] {
      Matrix(rows: out, columns: `in`, storage: try tensor(name, [out, `in`])).transposed().storage
    }

    wordEmbeddings = try tensor("embeddings.word_embeddings.weight", [configuration.vocabularySize, h])
    positionEmbeddings = try tensor("embeddings.position_embeddings.weight", [configuration.maxPositions, h])
    let types = try tensor("embeddings.token_type_embeddings.weight", [configuration.typeVocabularySize, h])
    tokenTypeEmbedding = Array(types[0..<h])
    embeddingNormGamma = try tensor("embeddings.LayerNorm.weight", [h])
    embeddingNormBeta = try tensor("embeddings.LayerNorm.bias", [h])

    var layers: [BertLayerWeights] = []
    for index in 0..<configuration.layerCount {
      let p = "encoder.layer.\(index)."
      let q = Matrix(
        rows: h, columns: h, storage: try linear(p + "attention.self.query.weight", out: h, in: h))
      let k = Matrix(rows: h, columns: h, storage: try linear(p + "attention.self.key.weight", out: h, in: h))
      let v = Matrix(
        rows: h, columns: h, storage: try linear(p + "attention.self.value.weight", out: h, in: h))
      var qkv = [Float](repeating: 0, count: h * 3 * h)
      for r in 0..<h {
        for c in 0..<h {
          qkv[r * 3 * h + c] = q.storage[r * h + c]
          qkv[r * 3 * h + h + c] = k.storage[r * h + c]
          qkv[r * 3 * h + 2 * h + c] = v.storage[r * h + c]
        }
      }
      let qkvBias =
        try tensor(p + "attention.self.query.bias", [h]) + tensor(p + "attention.self.key.bias", [h])
        + tensor(p + "attention.self.value.bias", [h])
      layers.append(
        BertLayerWeights(
          qkvWeight: qkv,
          qkvBias: qkvBias,
          attentionOutputWeight: try linear(p + "attention.output.dense.weight", out: h, in: h),
          attentionOutputBias: try tensor(p + "attention.output.dense.bias", [h]),
          attentionNormGamma: try tensor(p + "attention.output.LayerNorm.weight", [h]),
          attentionNormBeta: try tensor(p + "attention.output.LayerNorm.bias", [h]),
          intermediateWeight: try linear(p + "intermediate.dense.weight", out: inter, in: h),
          intermediateBias: try tensor(p + "intermediate.dense.bias", [inter]),
          outputWeight: try linear(p + "output.dense.weight", out: h, in: inter),
          outputBias: try tensor(p + "output.dense.bias", [h]),
          outputNormGamma: try tensor(p + "output.LayerNorm.weight", [h]),
          outputNormBeta: try tensor(p + "output.LayerNorm.bias", [h])))
    }
    self.layers = layers
  }

  /// Runs one sequence of token ids through the encoder.
  /// - Parameter ids: Token ids, `[tokens]`, including `[CLS]`/`[SEP]`; `1 ≤ tokens ≤ maxPositions`.
  /// - Returns: `last_hidden_state`, `[tokens, hidden]`.
  /// - Throws: `EmbeddingsError(.invalidInput)` for an empty or over-long sequence or an id out of range.
  public func encode(ids: [Int]) throws -> Matrix {
    try encode(batch: [ids])[0]
  }

  /// Runs several sequences at once, packed into one `[Σ tokens, hidden]` matrix.
  ///
  /// Packing is the padded-and-masked batch without the padding: every linear layer runs once over
  /// all rows of all sequences, and attention runs per sequence over that sequence's rows only,
  /// which is exactly what an attention mask over padded positions computes.
  /// - Parameter batch: Token-id sequences, each `1 ≤ count ≤ maxPositions`.
  /// - Returns: One `[tokens_i, hidden]` matrix per sequence, in order.
  /// - Throws: `EmbeddingsError(.invalidInput)`.
  /// - Complexity: about `21.2e6·T + 9216·T²` FLOPs per sequence for all-MiniLM-L6-v2.
  public func encode(batch: [[Int]]) throws -> [Matrix] {
    try forward(batch: batch, layers: 0..<layers.count)
  }

  /// Embeddings, then `layers[range]`, for a checked batch.
  func forward(batch: [[Int]], layers range: Range<Int>) throws(EmbeddingsError) -> [Matrix] {
    let c = configuration
    for ids in batch {
      guard !ids.isEmpty, ids.count <= c.maxPositions else {
        throw EmbeddingsError(
          .invalidInput, "a sequence has \(ids.count) tokens; the encoder takes 1 to \(c.maxPositions)")
      }
      try checkVocabulary(ids)
    }
    if batch.isEmpty { return [] }
    var workspace = Workspace(configuration: c, lengths: batch.map(\.count))
    embed(batch, into: &workspace)
    for layer in layers[range] { run(layer, on: &workspace) }
    return workspace.split()
  }

  /// An encoder sharing `base`'s configuration and embeddings with other layers.
  init(copying base: BertEncoder, layers: [BertLayerWeights]) {
    configuration = base.configuration
    wordEmbeddings = base.wordEmbeddings
    positionEmbeddings = base.positionEmbeddings
    tokenTypeEmbedding = base.tokenTypeEmbedding
    embeddingNormGamma = base.embeddingNormGamma
    embeddingNormBeta = base.embeddingNormBeta
    self.layers = layers
  }

  /// The buffers one forward pass needs, sized for the packed batch.
  struct Workspace {
    let lengths: [Int]
    let offsets: [Int]
    let rows: Int
    var hidden: [Float]  // [rows, hidden]
    var scratch: [Float]  // [rows, hidden]
    var qkv: [Float]  // [rows, 3·hidden]
    var context: [Float]  // [rows, hidden]
    var intermediate: [Float]  // [rows, intermediate]
    let longest: Int
    var scores: [Float]  // per worker: scores [maxT, maxT] and K_hᵀ [head size, maxT]; sized by `attention`

    /// The `hidden` rows of each sequence, `[tokens_i, hidden]`.
    func split() -> [Matrix] {
      let width = hidden.count / max(rows, 1)
      return zip(offsets, lengths).map { offset, length in
        Matrix(
          rows: length, columns: width, storage: Array(hidden[(offset * width)..<((offset + length) * width)])
        )
      }
    }

    init(configuration c: BertConfiguration, lengths: [Int]) {
      self.lengths = lengths
      var offsets: [Int] = []
      var total = 0
      for length in lengths {
        offsets.append(total)
        total += length
      }
      self.offsets = offsets
      rows = total
      let longest = lengths.max() ?? 0
      hidden = [Float](repeating: 0, count: total * c.hiddenSize)
      scratch = hidden
      context = hidden
      qkv = [Float](repeating: 0, count: total * 3 * c.hiddenSize)
      intermediate = [Float](repeating: 0, count: total * c.intermediateSize)
      self.longest = longest
      scores = []
    }
  }

  /// Word + position + token-type embeddings, then layer norm, into `workspace.hidden`.
  func embed(_ batch: [[Int]], into workspace: inout Workspace) {
    let h = configuration.hiddenSize
    let rows = workspace.rows
    workspace.hidden.withUnsafeMutableBufferPointer { x in
      wordEmbeddings.withUnsafeBufferPointer { words in
        positionEmbeddings.withUnsafeBufferPointer { positions in
          tokenTypeEmbedding.withUnsafeBufferPointer { type in
            var row = 0
            for ids in batch {
              for (position, id) in ids.enumerated() {
                let target = row * h
                let word = id * h
                let place = position * h
                for j in 0..<h { x[target + j] = words[word + j] + positions[place + j] + type[j] }
                row += 1
              }
            }
          }
        }
      }
      embeddingNormGamma.withUnsafeBufferPointer { gamma in
        embeddingNormBeta.withUnsafeBufferPointer { beta in
          VectorOps.layerNormRows(
            x, rows: rows, columns: h, gamma: gamma, beta: beta, epsilon: configuration.layerNormEpsilon)
        }
      }
    }
  }

  /// One transformer layer (post-norm, as BERT), updating `workspace.hidden` in place.
  func run(_ layer: BertLayerWeights, on w: inout Workspace) {
    let c = configuration
    let h = c.hiddenSize
    let n = w.rows
    let inter = c.intermediateSize
    let eps = c.layerNormEpsilon
    // Fused Q, K, V projection: qkv = b_qkv + hidden · W_qkv.
    Self.affine(
      input: w.hidden, rows: n, inputWidth: h, weight: layer.qkvWeight, bias: layer.qkvBias,
      into: &w.qkv)
    attention(&w)
    // Attention output: scratch = norm(hidden + b_o + context · W_o).
    Self.affine(
      input: w.context, rows: n, inputWidth: h, weight: layer.attentionOutputWeight,
      bias: layer.attentionOutputBias, residual: w.hidden, into: &w.scratch)
    Self.normalize(
      &w.scratch, rows: n, gamma: layer.attentionNormGamma, beta: layer.attentionNormBeta, epsilon: eps)
    // Feed-forward: intermediate = gelu(b_i + scratch · W_i).
    Self.affine(
      input: w.scratch, rows: n, inputWidth: h, weight: layer.intermediateWeight,
      bias: layer.intermediateBias, activation: .gelu, into: &w.intermediate)
    // Output: hidden = norm(scratch + b_out + intermediate · W_out).
    Self.affine(
      input: w.intermediate, rows: n, inputWidth: inter, weight: layer.outputWeight, bias: layer.outputBias,
      residual: w.scratch, into: &w.hidden)
    Self.normalize(&w.hidden, rows: n, gamma: layer.outputNormGamma, beta: layer.outputNormBeta, epsilon: eps)
  }

  /// `output [rows, width] = activation(residual + bias + input [rows, inputWidth] · weight)`, one
  /// team job (`Affine.apply`); `width = bias.count`, `residual` is `[rows, width]` when given.
  /// Shared with the trainable layer of `EncoderTuning`, so that it runs the encoder's kernels.
  package static func affine(
    input: [Float], rows: Int, inputWidth: Int, weight: [Float], bias: [Float], residual: [Float]? = nil,
    activation: Affine.Activation = .identity, into output: inout [Float]
  ) {
    precondition(
      input.count == rows * inputWidth && weight.count == inputWidth * bias.count
        && output.count == rows * bias.count && (residual?.count ?? output.count) == output.count,
      "affine: mismatched buffer sizes")
    output.withUnsafeMutableBufferPointer { out in
      input.withUnsafeBufferPointer { x in
        weight.withUnsafeBufferPointer { wt in
          bias.withUnsafeBufferPointer { b in
            func run(_ residual: UnsafePointer<Float>?) {
              Affine.apply(
                rows: rows, inputWidth: inputWidth, outputWidth: b.count, input: x.firstAddress,
                weight: wt.firstAddress, bias: b.firstAddress, residual: residual, activation: activation,
                output: out.firstAddress)
            }
            if let residual {
              residual.withUnsafeBufferPointer { run($0.firstAddress) }
            } else {
              run(nil)
            }
          }
        }
      }
    }
  }

  /// - Throws: `EmbeddingsError(.invalidInput)` naming the first id outside the vocabulary.
  func checkVocabulary(_ ids: [Int]) throws(EmbeddingsError) {
    if let bad = ids.first(where: { $0 < 0 || $0 >= configuration.vocabularySize }) {
      throw EmbeddingsError(
        .invalidInput, "token id \(bad) is outside the vocabulary (\(configuration.vocabularySize))")
    }
  }

  /// Layer normalisation of each row of `x` (`[rows, gamma.count]`), in place.
  static func normalize(_ x: inout [Float], rows: Int, gamma: [Float], beta: [Float], epsilon: Float) {
    x.withUnsafeMutableBufferPointer { out in
      gamma.withUnsafeBufferPointer { g in
        beta.withUnsafeBufferPointer { bt in
          VectorOps.layerNormRows(out, rows: rows, columns: g.count, gamma: g, beta: bt, epsilon: epsilon)
        }
      }
    }
  }

  /// Scaled dot-product attention per sequence and head: `context = softmax(QKᵀ/√d_h)·V`.
  ///
  /// The (sequence, head) pairs are independent; they are split across `BLAS.threadCount`
  /// workers, each with its own `[maxT, maxT]` score buffer.
  func attention(_ w: inout Workspace) {
    let h = configuration.hiddenSize
    let heads = configuration.headCount
    let dh = configuration.headSize
    let scale = 1 / Float(dh).squareRoot()
    let lengths = w.lengths
    let offsets = w.offsets
    let scoreSize = w.longest * w.longest
    let keySize = w.longest * dh
    let tasks = lengths.count * heads
    let workers = Parallel.workerCount(count: tasks, minimumChunk: 1)
    if w.scores.count < workers * (scoreSize + keySize) {
      w.scores = [Float](repeating: 0, count: workers * (scoreSize + keySize))
    }
    w.qkv.withUnsafeBufferPointer { qkv in
      w.context.withUnsafeMutableBufferPointer { ctx in
        w.scores.withUnsafeMutableBufferPointer { allScores in
          let base = qkv.firstAddress
          let context = ctx.firstAddress
          let scoreBase = allScores.firstAddress
          Parallel.forEachChunk(count: tasks, workers: workers) { chunk, worker in
            let scores = scoreBase + worker * (scoreSize + keySize)
            let keys = scores + scoreSize
            for task in chunk {
              let sequence = task / heads
              let head = task % heads
              let offset = offsets[sequence]
              let t = lengths[sequence]
              let q = base + offset * 3 * h + head * dh
              Attention.head(
                t: t, headSize: dh, scale: scale, q: q, k: q + h, v: q + 2 * h, stride: 3 * h, scores: scores,
                keys: keys, context: context + offset * h + head * dh, contextStride: h)
            }
          }
        }
      }
    }
  }
}
