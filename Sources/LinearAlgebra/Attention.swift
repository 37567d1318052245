/// Scaled dot-product attention kernels on raw row-major buffers.
public enum Attention {
  /// One head of one sequence: `P = softmax(scale · Q · Kᵀ)`, then `C = P · V`.
  ///
  /// `Kᵀ` is first copied into `keys` as a contiguous `[headSize, t]` block, so the score product
  /// needs no transposed operand (OpenBLAS is markedly slower with one at these small sizes).
  /// - Parameters:
  ///   - t: Rows of the sequence.
  ///   - headSize: Columns of the head.
  ///   - scale: Usually `1/√headSize`.
  ///   - q, k, v: The head's first query, key and value rows, `[t, headSize]` each with row stride
  ///     `stride` (e.g. `3·hidden` in a fused `Q | K | V` matrix).
  ///   - stride: The row stride of `q`, `k` and `v`.
  ///   - scores: `[t, t]`, overwritten with the probabilities `P`.
  ///   - keys: Scratch for `Kᵀ`, at least `headSize · t` values.
  ///   - context: The head's first output row, `[t, headSize]` with row stride `contextStride`.
  ///   - contextStride: The row stride of `context`.
  /// - Complexity: `4·t²·headSize` FLOPs in two `cblas_sgemm` calls.
  public static func head(
    t: Int, headSize: Int, scale: Float, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>, stride: Int, scores: UnsafeMutablePointer<Float>,
    keys: UnsafeMutablePointer<Float>, context: UnsafeMutablePointer<Float>, contextStride: Int
  ) {
    for row in 0..<t {
      let source = k + row * stride
      for column in 0..<headSize { keys[column * t + row] = source[column] }
    }
    // scores [t, t] = scale · Q [t, dh] · Kᵀ [dh, t]
    BLAS.gemm(m: t, n: t, k: headSize, alpha: scale, a: q, lda: stride, b: keys, ldb: t, c: scores, ldc: t)
    VectorOps.softmaxRows(UnsafeMutableBufferPointer(start: scores, count: t * t), rows: t, columns: t)
    // context [t, dh] = P [t, t] · V [t, dh]
    BLAS.gemm(m: t, n: headSize, k: t, a: scores, lda: t, b: v, ldb: stride, c: context, ldc: contextStride)
  }
}
