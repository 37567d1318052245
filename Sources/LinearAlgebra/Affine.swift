/// One linear layer with its bias, optional residual and activation, as a single team job.
///
/// `output [rows, n] = activation(residual [rows, n] + bias [n] + input [rows, k] · weight [k, n])`.
///
/// The output is split across `BLAS.threadCount` team members, by columns (at multiples of 16) when
/// there are at least as many columns as rows, else by rows. Each member writes the bias (and
/// residual) into its slice, lets one `cblas_sgemm` add the
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
    // Each member packs its part of the operands: a column slice of the weights and all input
    // rows, or a row slice of the input and all the weights. Cutting the larger side packs less.
    let byColumns = outputWidth >= rows
    let parts =
      rows * inputWidth * outputWidth < BLAS.splitMultiplyAdds
      ? 1 : max(1, min(team.size, byColumns ? outputWidth / 32 : rows / 8))
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
      // Columns start..<end of rows first..<last.
      var (first, last, start, end) = (0, rows, 0, outputWidth)
      if byColumns {
        if part > 0 { start = (outputWidth * part / parts + 8) / 16 * 16 }
        if part < parts - 1 { end = (outputWidth * (part + 1) / parts + 8) / 16 * 16 }
      } else {
        first = rows * part / parts
        last = rows * (part + 1) / parts
      }
      let width = end - start
      guard width > 0, last > first else { return }
      for r in first..<last {
        let row = output + r * outputWidth
        if let residual {
          let source = residual + r * outputWidth
          for j in start..<end { row[j] = source[j] + bias[j] }
        } else {
          for j in start..<end { row[j] = bias[j] }
        }
      }
      BLAS.sgemmOnCallingThread(
        m: last - first, n: width, k: inputWidth, a: input + first * inputWidth, lda: inputWidth,
        b: weight + start, ldb: outputWidth, beta: 1, c: output + first * outputWidth + start,
        ldc: outputWidth)
      if activation == .gelu {
        for r in first..<last {
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
