import Embeddings
import LinearAlgebra
import NeuralNetwork

extension TrainableBertLayer {
  /// The forward pass into `state` (sized by `Activations.prepare`); `output` gets `[rows, hidden]`.
  ///
  /// The same sequence of kernels as `BertEncoder.run`, so the output agrees with the encoder to
  /// float rounding; it also keeps the pre-activation `u` and each layer norm's `x̂` and `1/σ`.
  func run(_ s: inout Activations, output: inout [Float]) {
    let c = configuration
    let h = c.hiddenSize
    let inter = c.intermediateSize
    let n = s.rows
    let eps = c.layerNormEpsilon
    // qkv [n, 3h] = x · W_qkv + b_qkv
    BertEncoder.affine(
      input: s.input, rows: n, inputWidth: h, weight: qkvWeight.value, bias: qkvBias.value, into: &s.qkv)
    attentionForward(&s)
    // a = LN₁(x + C · W_o + b_o)
    BertEncoder.affine(
      input: s.context, rows: n, inputWidth: h, weight: attentionOutputWeight.value,
      bias: attentionOutputBias.value, residual: s.input, into: &s.attentionOutput)
    Self.normalize(
      &s.attentionOutput, normalized: &s.attentionNormalized, inverseDeviation: &s.attentionInverseDeviation,
      rows: n, gamma: attentionNormGamma.value, beta: attentionNormBeta.value, epsilon: eps)
    // u [n, inter] = a · W_i + b_i; GELU(u) into a workspace buffer.
    BertEncoder.affine(
      input: s.attentionOutput, rows: n, inputWidth: h, weight: intermediateWeight.value,
      bias: intermediateBias.value, into: &s.intermediate)
    resize(&workspace.wideA, to: n * inter)
    workspace.wideA.withUnsafeMutableBufferPointer { g in
      s.intermediate.withUnsafeBufferPointer { u in
        g.firstAddress.update(from: u.firstAddress, count: n * inter)
      }
      VectorOps.gelu(g)
    }
    // y = LN₂(a + GELU(u) · W_out + b_out)
    BertEncoder.affine(
      input: workspace.wideA, rows: n, inputWidth: inter, weight: outputWeight.value, bias: outputBias.value,
      residual: s.attentionOutput, into: &output)
    Self.normalize(
      &output, normalized: &s.outputNormalized, inverseDeviation: &s.outputInverseDeviation, rows: n,
      gamma: outputNormGamma.value, beta: outputNormBeta.value, epsilon: eps)
  }

  /// Layer normalisation of each row of `x` (`[rows, gamma.count]`) in place, as
  /// `VectorOps.layerNormRows` (biased variance), keeping `x̂ = (x − μ)·r` in `normalized`
  /// (`[rows, columns]`) and `r = 1/√(var + ε)` in `inverseDeviation` (`[rows]`).
  static func normalize(
    _ x: inout [Float], normalized: inout [Float], inverseDeviation: inout [Float], rows: Int,
    gamma: [Float], beta: [Float], epsilon: Float
  ) {
    let columns = gamma.count
    precondition(
      x.count == rows * columns && normalized.count == x.count && inverseDeviation.count == rows
        && beta.count == columns, "layer norm: mismatched buffer sizes")
    x.withUnsafeMutableBufferPointer { xb in
      normalized.withUnsafeMutableBufferPointer { nb in
        inverseDeviation.withUnsafeMutableBufferPointer { rb in
          gamma.withUnsafeBufferPointer { gb in
            beta.withUnsafeBufferPointer { bb in
              VectorOps.layerNormRows(
                xb, rows: rows, columns: columns, gamma: gb, beta: bb, epsilon: epsilon,
                normalized: nb.firstAddress, inverseDeviation: rb.firstAddress)
            }
          }
        }
      }
    }
  }

  /// Scaled dot-product attention per sequence and head, `C = softmax(Q_h·K_hᵀ/√d_h)·V_h`, from
  /// `s.qkv` into `s.context`, keeping the probabilities in `s.probabilities`.
  ///
  /// The (sequence, head) pairs are split across `BLAS.threadCount` workers, each with its own
  /// transposed-key buffer, exactly as `BertEncoder.attention`.
  func attentionForward(_ s: inout Activations) {
    let h = configuration.hiddenSize
    let heads = configuration.headCount
    let dh = configuration.headSize
    let scale = 1 / Float(dh).squareRoot()
    let lengths = s.lengths
    let offsets = s.offsets
    let probabilityOffsets = s.probabilityOffsets
    let keySize = s.longest * dh
    let tasks = lengths.count * heads
    let workers = Parallel.workerCount(count: tasks, minimumChunk: 1)
    if workspace.attention.count < workers * keySize {
      workspace.attention = [Float](repeating: 0, count: workers * keySize)
    }
    s.qkv.withUnsafeBufferPointer { qkv in
      s.context.withUnsafeMutableBufferPointer { ctx in
        s.probabilities.withUnsafeMutableBufferPointer { probabilities in
          workspace.attention.withUnsafeMutableBufferPointer { scratch in
            let base = qkv.firstAddress
            let context = ctx.firstAddress
            let probabilityBase = probabilities.firstAddress
            let scratchBase = scratch.firstAddress
            Parallel.forEachChunk(count: tasks, workers: workers) { chunk, worker in
              let keys = scratchBase + worker * keySize
              for task in chunk {
                let sequence = task / heads
                let head = task % heads
                let offset = offsets[sequence]
                let t = lengths[sequence]
                let q = base + offset * 3 * h + head * dh
                Attention.head(
                  t: t, headSize: dh, scale: scale, q: q, k: q + h, v: q + 2 * h, stride: 3 * h,
                  scores: probabilityBase + probabilityOffsets[sequence] + head * t * t, keys: keys,
                  context: context + offset * h + head * dh, contextStride: h)
              }
            }
          }
        }
      }
    }
  }
}
