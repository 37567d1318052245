import LinearAlgebra

/// A fully connected layer: `y = activation(x · weight + bias)`, one GEMM.
public final class Dense: Layer {
  /// Prefix of the tensor names (`name.weight`, `name.bias`).
  public let name: String
  /// Features per input row.
  public let inputFeatures: Int
  /// Features per output row.
  public let outputFeatures: Int
  /// The fused activation.
  public let activation: Activation
  /// Weight `[inputFeatures, outputFeatures]` (the Keras kernel layout); L2 applies.
  public let weight: Parameter
  /// Bias `[outputFeatures]`.
  public let bias: Parameter

  private var cachedInput: Tensor?
  private var output: [Float] = []
  private var maskedGradient: [Float] = []

  /// Creates a layer with freshly initialised weights and zero bias.
  /// - Parameters:
  ///   - name: Tensor name prefix.
  ///   - inputFeatures: Input width (≥ 1).
  ///   - outputFeatures: Output width (≥ 1).
  ///   - activation: Fused activation (default `.linear`).
  ///   - initialization: Weight distribution (default Glorot uniform, as Keras).
  ///   - random: Generator for the weights.
  public init(
    name: String, inputFeatures: Int, outputFeatures: Int, activation: Activation = .linear,
    initialization: WeightInitialization = .glorotUniform, random: inout NetworkRandom
  ) {
    precondition(inputFeatures > 0 && outputFeatures > 0, "Dense sizes must be > 0")
    self.name = name
    self.inputFeatures = inputFeatures
    self.outputFeatures = outputFeatures
    self.activation = activation
    let values = initialization.values(
      count: inputFeatures * outputFeatures, fanIn: inputFeatures, fanOut: outputFeatures,
      random: &random)
    weight = Parameter(
      name: "\(name).weight", shape: [inputFeatures, outputFeatures], value: values,
      isRegularized: true)
    bias = Parameter(
      name: "\(name).bias", shape: [outputFeatures],
      value: [Float](repeating: 0, count: outputFeatures))
  }

  /// Trainable tensors: weight, bias.
  public var parameters: [Parameter] { [weight, bias] }

  /// Applies the affine map and the activation.
  /// - Parameters:
  ///   - input: `[batch, inputFeatures]`.
  ///   - training: Whether to keep the input for `backward`.
  /// - Returns: `[batch, outputFeatures]`.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    precondition(
      input.shape.count == 2 && input.shape[1] == inputFeatures,
      "\(name): input shape \(input.shape), expected [batch, \(inputFeatures)]")
    cachedInput = training ? input : nil
    let rows = input.batch
    let n = outputFeatures
    let k = inputFeatures
    resize(&output, to: rows * n)
    if rows > 0 {
      input.storage.withUnsafeBufferPointer { px in
        weight.value.withUnsafeBufferPointer { pw in
          bias.value.withUnsafeBufferPointer { pb in
            output.withUnsafeMutableBufferPointer { out in
              broadcastRows(pb, into: out, rows: rows, columns: n)
              BLAS.gemm(
                m: rows, n: n, k: k, a: px.start, lda: k, b: pw.start, ldb: n, beta: 1,
                c: out.start, ldc: n)
              if activation == .relu { VectorOps.relu(out) }
            }
          }
        }
      }
    }
    return Tensor(shape: [rows, n], storage: output)
  }

  /// Back-propagates through the last training-mode `forward`.
  /// - Parameter gradientOutput: `[batch, outputFeatures]`.
  /// - Returns: `[batch, inputFeatures]`; adds `xᵀ·g` into `weight.gradient` and `Σ_rows g` into
  ///   `bias.gradient` (`g` being the gradient after the activation's derivative).
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let input = cachedInput else {
      preconditionFailure("\(name): backward without a training-mode forward")
    }
    let rows = input.batch
    let n = outputFeatures
    let k = inputFeatures
    precondition(
      gradientOutput.shape == [rows, n], "\(name): gradient shape does not match the last forward")
    guard rows > 0 else { return Tensor(shape: [0, k]) }
    var gradientInput = [Float](repeating: 0, count: rows * k)
    resize(&maskedGradient, to: rows * n)
    gradientOutput.storage.withUnsafeBufferPointer { pgo in
      maskedGradient.withUnsafeMutableBufferPointer { pm in
        if activation == .relu {
          output.withUnsafeBufferPointer { py in maskReLUGradient(pgo, output: py, into: pm) }
        } else {
          _ = pm.update(fromContentsOf: pgo)
        }
      }
    }
    maskedGradient.withUnsafeBufferPointer { pg in
      accumulateColumnSums(pg, rows: rows, columns: n, into: &bias.gradient)
      input.storage.withUnsafeBufferPointer { px in
        weight.gradient.withUnsafeMutableBufferPointer { pdw in
          BLAS.gemm(
            transposeA: true, m: k, n: n, k: rows, a: px.start, lda: k, b: pg.start, ldb: n,
            beta: 1, c: pdw.start, ldc: n)
        }
      }
      weight.value.withUnsafeBufferPointer { pw in
        gradientInput.withUnsafeMutableBufferPointer { pdx in
          BLAS.gemm(
            transposeB: true, m: rows, n: k, k: n, a: pg.start, lda: n, b: pw.start, ldb: n,
            c: pdx.start, ldc: k)
        }
      }
    }
    return Tensor(shape: [rows, k], storage: gradientInput)
  }
}
