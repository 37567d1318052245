/// One linear layer with its bias, optional residual and activation, as a single team job.
///
/// `output [rows, n] = activation(residual [rows, n] + bias [n] + input [rows, k] · weight [k, n])`.
///
/// The output columns are split across `BLAS.threadCount` team members (at multiples of 16). Each
/// member writes the bias (and residual) into its column slice, lets one `cblas_sgemm` add the
/// product (`beta = 1`), and applies the activation to the slice while it is still in cache: one
/// hand-off per layer instead of three (initialise, multiply, activate), and no serial pass.
public enum Affine {
  /// The element-wise function applied after the product.
  public enum Activation: Sendable {
    case identity
    /// The exact, erf-based GELU (`VectorOps.gelu`).
    case gelu
  }

  /// Computes the layer into `output`; see the type's documentation for the formula.
  ///
  /// - Parameters:
  ///   - input: `[rows, inputWidth]`, row-major.
  ///   - weight: `[inputWidth, outputWidth]`, row-major (the transpose of PyTorch's `Linear.weight`).
  ///   - bias: `[outputWidth]`.
  ///   - residual: `[rows, outputWidth]` added before the activation, or `nil`.
  ///   - output: `[rows, outputWidth]`; must not overlap the inputs.
  /// - Complexity: `2·rows·inputWidth·outputWidth` FLOPs in one `cblas_sgemm` per member.
  public static func apply(
    rows: Int, inputWidth: Int, outputWidth: Int,
    input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
    residual: UnsafePointer<Float>?, activation: Activation = .identity,
    output: UnsafeMutablePointer<Float>
  ) {
    guard rows > 0, outputWidth > 0 else { return }
    let team = BLAS.currentTeam
    let parts =
      rows * inputWidth * outputWidth >= BLAS.splitMultiplyAdds ? max(1, min(team.size, outputWidth / 32)) : 1
    let addresses = (
      input: UInt(bitPattern: input), weight: UInt(bitPattern: weight), bias: UInt(bitPattern: bias),
      residual: residual.map { UInt(bitPattern: $0) }, output: UInt(bitPattern: output)
    )
    let slice = { (part: Int) in
      guard let input = UnsafePointer<Float>(bitPattern: addresses.input),
        let weight = UnsafePointer<Float>(bitPattern: addresses.weight),
        let bias = UnsafePointer<Float>(bitPattern: addresses.bias),
        let output = UnsafeMutablePointer<Float>(bitPattern: addresses.output)
      else { return }
      let residual = addresses.residual.flatMap { UnsafePointer<Float>(bitPattern: $0) }
      let start = part == 0 ? 0 : (outputWidth * part / parts + 8) / 16 * 16
      let end = part == parts - 1 ? outputWidth : (outputWidth * (part + 1) / parts + 8) / 16 * 16
      let width = end - start
      guard width > 0 else { return }
      for r in 0..<rows {
        let row = output + r * outputWidth
        if let residual {
          let source = residual + r * outputWidth
          for j in start..<end { row[j] = source[j] + bias[j] }
        } else {
          for j in start..<end { row[j] = bias[j] }
        }
      }
      BLAS.sgemmOnCallingThread(
        m: rows, n: width, k: inputWidth, a: input, lda: inputWidth, b: weight + start,
        ldb: outputWidth, beta: 1, c: output + start, ldc: outputWidth)
      if activation == .gelu {
        for r in 0..<rows {
          VectorOps.geluSerial(output + r * outputWidth + start, count: width)
        }
      }
    }
    if parts <= 1 {
      slice(0)
    } else {
      team.run { part in if part < parts { slice(part) } }
    }
  }
}
