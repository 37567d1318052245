import LinearAlgebra

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
    Self.affine(
      input: s.input, rows: n, inputWidth: h, weight: qkvWeight.value, bias: qkvBias.value, into: &s.qkv)
    attentionForward(&s)
    // a = LN₁(x + C · W_o + b_o)
    Self.affine(
      input: s.context, rows: n, inputWidth: h, weight: attentionOutputWeight.value,
      bias: attentionOutputBias.value, residual: s.input, into: &s.attentionOutput)
    Self.normalize(
      &s.attentionOutput, normalized: &s.attentionNormalized, inverseDeviation: &s.attentionInverseDeviation,
      rows: n, gamma: attentionNormGamma.value, beta: attentionNormBeta.value, epsilon: eps)
    // u [n, inter] = a · W_i + b_i; GELU(u) into a workspace buffer.
    Self.affine(
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
    Self.affine(
      input: workspace.wideA, rows: n, inputWidth: inter, weight: outputWeight.value, bias: outputBias.value,
      residual: s.attentionOutput, into: &output)
    Self.normalize(
      &output, normalized: &s.outputNormalized, inverseDeviation: &s.outputInverseDeviation, rows: n,
      gamma: outputNormGamma.value, beta: outputNormBeta.value, epsilon: eps)
  }

  /// `output [rows, width] = residual + bias + input [rows, inputWidth] · weight [inputWidth, width]`,
  /// `width = bias.count`: one `Affine.apply` team job (one `cblas_sgemm` per team member).
  static func affine(
    input: [Float], rows: Int, inputWidth: Int, weight: [Float], bias: [Float], residual: [Float]? = nil,
    into output: inout [Float]
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
                weight: wt.firstAddress, bias: b.firstAddress, residual: residual, output: out.firstAddress)
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
    let n = Float(columns)
    x.withUnsafeMutableBufferPointer { xb in
      normalized.withUnsafeMutableBufferPointer { nb in
        inverseDeviation.withUnsafeMutableBufferPointer { rb in
          gamma.withUnsafeBufferPointer { gb in
            beta.withUnsafeBufferPointer { bb in
              let (base, hat, inverse) = (xb.firstAddress, nb.firstAddress, rb.firstAddress)
              let (g, b) = (gb.firstAddress, bb.firstAddress)
              Parallel.forEachChunk(count: rows, minimumChunk: max(1, 16_384 / columns)) { chunk, _ in
                for r in chunk {
                  let row = base + r * columns
                  let rowHat = hat + r * columns
                  var sum: Float = 0
                  for c in 0..<columns { sum += row[c] }
                  let mean = sum / n
                  var squares: Float = 0
                  for c in 0..<columns {
                    let d = row[c] - mean
                    squares += d * d
                  }
                  let scale = 1 / (squares / n + epsilon).squareRoot()
                  inverse[r] = scale
                  for c in 0..<columns {
                    let normalizedValue = (row[c] - mean) * scale
                    rowHat[c] = normalizedValue
                    row[c] = normalizedValue * g[c] + b[c]
                  }
                }
              }
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
                let k = q + h
                let v = q + 2 * h
                let scores = probabilityBase + probabilityOffsets[sequence] + head * t * t
                // K_hᵀ [dh, t], contiguous (as the encoder: no transposed operand at small sizes).
                for row in 0..<t {
                  let source = k + row * 3 * h
                  for column in 0..<dh { keys[column * t + row] = source[column] }
                }
                // P [t, t] = softmax(scale · Q_h [t, dh] · K_hᵀ [dh, t])
                BLAS.gemm(
                  m: t, n: t, k: dh, alpha: scale, a: q, lda: 3 * h, b: keys, ldb: t, c: scores, ldc: t)
                VectorOps.softmaxRows(
                  UnsafeMutableBufferPointer(start: scores, count: t * t), rows: t, columns: t)
                // C_h [t, dh] (row stride hidden) = P [t, t] · V_h [t, dh]
                BLAS.gemm(
                  m: t, n: dh, k: t, a: scores, lda: t, b: v, ldb: 3 * h, c: context + offset * h + head * dh,
                  ldc: h)
              }
            }
          }
        }
      }
    }
  }
}
