import LinearAlgebra
import NeuralNetwork

extension TrainableBertLayer {
  /// Backpropagates `gradientOutput` (`[rows, hidden]`) through the pass recorded in `s`,
  /// accumulating parameter gradients; returns `∂loss/∂input` when `inputGradient`.
  func differentiate(_ s: Activations, gradientOutput: [Float], inputGradient: Bool) -> [Float]? {
    let c = configuration
    let h = c.hiddenSize
    let inter = c.intermediateSize
    let n = s.rows
    var w = Workspace()
    swap(&w, &workspace)
    defer { swap(&w, &workspace) }
    resize(&w.wideA, to: n * inter)
    resize(&w.wideB, to: n * inter)
    resize(&w.gradientPreNorm, to: n * h)
    resize(&w.gradientHidden, to: n * h)
    resize(&w.gradientContext, to: n * h)
    resize(&w.gradientQKV, to: n * 3 * h)

    // y = LN₂(z₂): dz₂ from dy.
    Self.normalizeBackward(
      gradientOutput, normalized: s.outputNormalized, inverseDeviation: s.outputInverseDeviation, rows: n,
      gamma: outputNormGamma.value, gammaGradient: &outputNormGamma.gradient,
      betaGradient: &outputNormBeta.gradient, into: &w.gradientPreNorm)
    // z₂ = a + g·W_out + b_out, g = GELU(u): db_out, dW_out = gᵀ·dz₂, dg = dz₂·W_outᵀ.
    Self.addColumnSums(w.gradientPreNorm, rows: n, into: &outputBias.gradient)
    Self.geluAndDerivative(s.intermediate, value: &w.wideA, derivative: &w.wideB)
    Self.gemm(
      transposeA: true, m: inter, n: h, k: n, a: w.wideA, lda: inter, b: w.gradientPreNorm, ldb: h, beta: 1,
      c: &outputWeight.gradient, ldc: h)
    Self.gemm(
      transposeB: true, m: n, n: inter, k: h, a: w.gradientPreNorm, lda: h, b: outputWeight.value, ldb: h,
      c: &w.wideA, ldc: inter)
    // du = dg ⊙ GELU′(u), in wideA.
    Self.multiply(&w.wideA, by: w.wideB)
    // u = a·W_i + b_i: db_i, dW_i = aᵀ·du; da = dz₂ (residual) + du·W_iᵀ.
    Self.addColumnSums(w.wideA, rows: n, into: &intermediateBias.gradient)
    Self.gemm(
      transposeA: true, m: h, n: inter, k: n, a: s.attentionOutput, lda: h, b: w.wideA, ldb: inter, beta: 1,
      c: &intermediateWeight.gradient, ldc: inter)
    Self.copy(w.gradientPreNorm, into: &w.gradientHidden)
    Self.gemm(
      transposeB: true, m: n, n: h, k: inter, a: w.wideA, lda: inter, b: intermediateWeight.value, ldb: inter,
      beta: 1, c: &w.gradientHidden, ldc: h)
    // a = LN₁(z₁): dz₁ (overwrites dz₂, no longer needed).
    Self.normalizeBackward(
      w.gradientHidden, normalized: s.attentionNormalized, inverseDeviation: s.attentionInverseDeviation,
      rows: n, gamma: attentionNormGamma.value, gammaGradient: &attentionNormGamma.gradient,
      betaGradient: &attentionNormBeta.gradient, into: &w.gradientPreNorm)
    // z₁ = x + C·W_o + b_o: db_o, dW_o = Cᵀ·dz₁, dC = dz₁·W_oᵀ.
    Self.addColumnSums(w.gradientPreNorm, rows: n, into: &attentionOutputBias.gradient)
    Self.gemm(
      transposeA: true, m: h, n: h, k: n, a: s.context, lda: h, b: w.gradientPreNorm, ldb: h, beta: 1,
      c: &attentionOutputWeight.gradient, ldc: h)
    Self.gemm(
      transposeB: true, m: n, n: h, k: h, a: w.gradientPreNorm, lda: h, b: attentionOutputWeight.value,
      ldb: h, c: &w.gradientContext, ldc: h)
    // Attention: dQKV [n, 3h].
    attentionBackward(
      s, gradientContext: w.gradientContext, into: &w.gradientQKV, scratch: &w.attention)
    // qkv = x·W_qkv + b_qkv: db_qkv, dW_qkv = xᵀ·dQKV; dx = dz₁ (residual) + dQKV·W_qkvᵀ.
    Self.addColumnSums(w.gradientQKV, rows: n, into: &qkvBias.gradient)
    Self.gemm(
      transposeA: true, m: h, n: 3 * h, k: n, a: s.input, lda: h, b: w.gradientQKV, ldb: 3 * h, beta: 1,
      c: &qkvWeight.gradient, ldc: 3 * h)
    guard inputGradient else { return nil }
    var gradientInput = w.gradientPreNorm
    Self.gemm(
      transposeB: true, m: n, n: h, k: 3 * h, a: w.gradientQKV, lda: 3 * h, b: qkvWeight.value, ldb: 3 * h,
      beta: 1, c: &gradientInput, ldc: h)
    return gradientInput
  }

  /// Attention backward per (sequence, head), writing every entry of `gradientQKV` once:
  /// `dV = Pᵀ·dC`, `dP = dC·Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = scale·dS·K`,
  /// `dK = scale·dSᵀ·Q`.
  /// - Parameters:
  ///   - s: The recorded forward pass (`qkv`, `probabilities`).
  ///   - gradientContext: `∂loss/∂C`, `[rows, hidden]`.
  ///   - gradientQKV: `[rows, 3·hidden]`, overwritten with `∂loss/∂qkv`.
  ///   - scratch: Per-worker `[maxT, maxT]` buffers, grown as needed.
  func attentionBackward(
    _ s: Activations, gradientContext: [Float], into gradientQKV: inout [Float], scratch: inout [Float]
  ) {
    let h = configuration.hiddenSize
    let heads = configuration.headCount
    let dh = configuration.headSize
    let scale = 1 / Float(dh).squareRoot()
    let lengths = s.lengths
    let offsets = s.offsets
    let probabilityOffsets = s.probabilityOffsets
    let scoreSize = s.longest * s.longest
    let tasks = lengths.count * heads
    let workers = Parallel.workerCount(count: tasks, minimumChunk: 1)
    if scratch.count < workers * scoreSize {
      scratch = [Float](repeating: 0, count: workers * scoreSize)
    }
    s.qkv.withUnsafeBufferPointer { qkv in
      s.probabilities.withUnsafeBufferPointer { probabilities in
        gradientContext.withUnsafeBufferPointer { dContext in
          gradientQKV.withUnsafeMutableBufferPointer { dQKV in
            scratch.withUnsafeMutableBufferPointer { allScratch in
              let base = qkv.firstAddress
              let probabilityBase = probabilities.firstAddress
              let dContextBase = dContext.firstAddress
              let dBase = dQKV.firstAddress
              let scratchBase = allScratch.firstAddress
              Parallel.forEachChunk(count: tasks, workers: workers) { chunk, worker in
                let dScores = scratchBase + worker * scoreSize
                for task in chunk {
                  let sequence = task / heads
                  let head = task % heads
                  let offset = offsets[sequence]
                  let t = lengths[sequence]
                  let p = probabilityBase + probabilityOffsets[sequence] + head * t * t
                  let q = base + offset * 3 * h + head * dh
                  let k = q + h
                  let v = q + 2 * h
                  let dC = dContextBase + offset * h + head * dh
                  let dQ = dBase + offset * 3 * h + head * dh
                  let dK = dQ + h
                  let dV = dQ + 2 * h
                  // dV [t, dh] = Pᵀ [t, t] · dC [t, dh]
                  BLAS.gemm(
                    transposeA: true, m: t, n: dh, k: t, a: p, lda: t, b: dC, ldb: h, c: dV, ldc: 3 * h)
                  // dP [t, t] = dC [t, dh] · Vᵀ [dh, t]
                  BLAS.gemm(
                    transposeB: true, m: t, n: t, k: dh, a: dC, lda: h, b: v, ldb: 3 * h, c: dScores, ldc: t)
                  // dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place.
                  for row in 0..<t {
                    let pRow = p + row * t
                    let dRow = dScores + row * t
                    var dot: Float = 0
                    for j in 0..<t { dot += dRow[j] * pRow[j] }
                    for j in 0..<t { dRow[j] = pRow[j] * (dRow[j] - dot) }
                  }
                  // dQ [t, dh] = scale · dS [t, t] · K [t, dh]
                  BLAS.gemm(
                    m: t, n: dh, k: t, alpha: scale, a: dScores, lda: t, b: k, ldb: 3 * h, c: dQ, ldc: 3 * h)
                  // dK [t, dh] = scale · dSᵀ [t, t] · Q [t, dh]
                  BLAS.gemm(
                    transposeA: true, m: t, n: dh, k: t, alpha: scale, a: dScores, lda: t, b: q, ldb: 3 * h,
                    c: dK, ldc: 3 * h)
                }
              }
            }
          }
        }
      }
    }
  }

  /// Layer-norm backward for `y = x̂·γ + β`, `x̂ = (x − μ)·r`, `r = 1/√(var + ε)` (biased variance):
  /// `dγ += Σ_rows dy ⊙ x̂`, `dβ += Σ_rows dy`, `dx = r·(g − mean(g) − x̂·mean(g ⊙ x̂))` with `g = dy ⊙ γ`.
  /// - Parameters:
  ///   - gradient: `dy`, `[rows, columns]`.
  ///   - normalized: `x̂`, `[rows, columns]`.
  ///   - inverseDeviation: `r`, `[rows]`.
  ///   - gamma: `γ`, `[columns]`.
  ///   - gammaGradient, betaGradient: `[columns]`, accumulated into.
  ///   - result: `dx`, `[rows, columns]`, overwritten.
  static func normalizeBackward(
    _ gradient: [Float], normalized: [Float], inverseDeviation: [Float], rows: Int, gamma: [Float],
    gammaGradient: inout [Float], betaGradient: inout [Float], into result: inout [Float]
  ) {
    let columns = gamma.count
    precondition(
      gradient.count == rows * columns && normalized.count == gradient.count && result.count == gradient.count
        && inverseDeviation.count == rows && gammaGradient.count == columns && betaGradient.count == columns,
      "layer norm backward: mismatched buffer sizes")
    let n = Float(columns)
    gradient.withUnsafeBufferPointer { dyb in
      normalized.withUnsafeBufferPointer { hatb in
        inverseDeviation.withUnsafeBufferPointer { rb in
          gamma.withUnsafeBufferPointer { gb in
            result.withUnsafeMutableBufferPointer { outb in
              let (dy, hat, inverse, g, out) = (
                dyb.firstAddress, hatb.firstAddress, rb.firstAddress, gb.firstAddress, outb.firstAddress
              )
              gammaGradient.withUnsafeMutableBufferPointer { dGamma in
                betaGradient.withUnsafeMutableBufferPointer { dBeta in
                  for r in 0..<rows {
                    let row = r * columns
                    for c in 0..<columns {
                      dGamma[c] += dy[row + c] * hat[row + c]
                      dBeta[c] += dy[row + c]
                    }
                  }
                }
              }
              Parallel.forEachChunk(count: rows, minimumChunk: max(1, 16_384 / columns)) { chunk, _ in
                for r in chunk {
                  let dyRow = dy + r * columns
                  let hatRow = hat + r * columns
                  let outRow = out + r * columns
                  var sum: Float = 0
                  var dot: Float = 0
                  for c in 0..<columns {
                    let scaled = dyRow[c] * g[c]
                    sum += scaled
                    dot += scaled * hatRow[c]
                  }
                  let mean = sum / n
                  let meanDot = dot / n
                  let scale = inverse[r]
                  for c in 0..<columns {
                    outRow[c] = scale * (dyRow[c] * g[c] - mean - hatRow[c] * meanDot)
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  /// `value = GELU(u) = u·Φ(u)` and `derivative = Φ(u) + u·φ(u)` element-wise, with
  /// `Φ(u) = ½(1 + erf(u/√2))` (`FastMath.erf`) and `φ(u) = exp(−u²/2)/√(2π)`.
  /// All three buffers have the same count.
  static func geluAndDerivative(_ u: [Float], value: inout [Float], derivative: inout [Float]) {
    precondition(value.count == u.count && derivative.count == u.count, "GELU: mismatched buffer sizes")
    let inverseRoot2: Float = 0.707_106_781_186_547_5
    let inverseRoot2Pi: Float = 0.398_942_280_401_432_7
    u.withUnsafeBufferPointer { ub in
      value.withUnsafeMutableBufferPointer { vb in
        derivative.withUnsafeMutableBufferPointer { db in
          guard let x = ub.baseAddress, let y = vb.baseAddress, let d = db.baseAddress else { return }
          Parallel.forEachChunk(count: ub.count, minimumChunk: 16_384) { chunk, _ in
            for i in chunk {
              let v = x[i]
              let cdf = 0.5 * (1 + FastMath.erf(v * inverseRoot2))
              y[i] = v * cdf
              d[i] = cdf + v * inverseRoot2Pi * FastMath.exp(-0.5 * v * v)
            }
          }
        }
      }
    }
  }

  /// `x ← x ⊙ y` element-wise (equal counts).
  static func multiply(_ x: inout [Float], by y: [Float]) {
    precondition(x.count == y.count, "multiply: mismatched buffer sizes")
    x.withUnsafeMutableBufferPointer { xb in
      y.withUnsafeBufferPointer { yb in
        guard let a = xb.baseAddress, let b = yb.baseAddress else { return }
        Parallel.forEachChunk(count: xb.count, minimumChunk: 16_384) { chunk, _ in
          for i in chunk { a[i] *= b[i] }
        }
      }
    }
  }

  /// Copies `source` into `target` (equal counts), keeping `target`'s storage.
  static func copy(_ source: [Float], into target: inout [Float]) {
    precondition(source.count == target.count, "copy: mismatched buffer sizes")
    target.withUnsafeMutableBufferPointer { t in
      source.withUnsafeBufferPointer { s in
        guard let to = t.baseAddress, let from = s.baseAddress else { return }
        to.update(from: from, count: s.count)
      }
    }
  }

  /// `sums[c] += Σ_r x[r, c]` for `x [rows, sums.count]`: a bias gradient.
  static func addColumnSums(_ x: [Float], rows: Int, into sums: inout [Float]) {
    x.withUnsafeBufferPointer { accumulateColumnSums($0, rows: rows, columns: sums.count, into: &sums) }
  }

  /// `C ← op(A)·op(B) + beta·C` on whole arrays, one `BLAS.gemm` (see there for the layouts).
  static func gemm(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, a: [Float], lda: Int,
    b: [Float], ldb: Int, beta: Float = 0, c: inout [Float], ldc: Int
  ) {
    precondition(
      a.count >= (transposeA ? k * lda : m * lda) && b.count >= (transposeB ? n * ldb : k * ldb)
        && c.count >= m * ldc, "gemm: buffers too small")
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          BLAS.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: pa.firstAddress, lda: lda,
            b: pb.firstAddress, ldb: ldb, beta: beta, c: pc.firstAddress, ldc: ldc)
        }
      }
    }
  }
}
