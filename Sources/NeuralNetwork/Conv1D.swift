import LinearAlgebra

/// A one-dimensional convolution over positions with valid padding and stride 1, as Keras
/// `Conv1D(filters, kernel_size, activation=…)`.
///
/// `y[b, t, o] = activation(bias[o] + Σ_j Σ_c x[b, t + j, c] · weight[j, c, o])` for
/// `t ∈ 0 ..< length − kernelSize + 1`. Forward is im2col (`[batch · outputLength,
/// kernelSize · inputChannels]`) and one GEMM; backward is one GEMM for the weight gradient and one
/// GEMM plus col2im for the input gradient.
public final class Conv1D: Layer {
  /// Prefix of the tensor names (`name.weight`, `name.bias`).
  public let name: String
  /// Channels per input position.
  public let inputChannels: Int
  /// Channels per output position (filters).
  public let outputChannels: Int
  /// Positions covered by one filter.
  public let kernelSize: Int
  /// The fused activation.
  public let activation: Activation
  /// Kernel `[kernelSize, inputChannels, outputChannels]` (the Keras layout), used as a
  /// `[kernelSize · inputChannels, outputChannels]` matrix; L2 applies.
  public let weight: Parameter
  /// Bias `[outputChannels]`.
  public let bias: Parameter

  private var columns: [Float] = []
  private var output: [Float] = []
  private var maskedGradient: [Float] = []
  private var columnGradient: [Float] = []
  private var cachedInputShape: [Int]?

  /// Creates a convolution with freshly initialised weights and zero bias.
  /// - Parameters:
  ///   - name: Tensor name prefix.
  ///   - inputChannels: Channels per input position (≥ 1).
  ///   - outputChannels: Filters (≥ 1).
  ///   - kernelSize: Filter width (≥ 1).
  ///   - activation: Fused activation (default `.linear`).
  ///   - initialization: Weight distribution (fan-in `kernelSize · inputChannels`, fan-out
  ///     `kernelSize · outputChannels`, as Keras).
  ///   - random: Generator for the weights.
  public init(
    name: String, inputChannels: Int, outputChannels: Int, kernelSize: Int,
    activation: Activation = .linear, initialization: WeightInitialization = .glorotUniform,
    random: inout NetworkRandom
  ) {
    precondition(
      inputChannels > 0 && outputChannels > 0 && kernelSize > 0, "Conv1D sizes must be > 0")
    self.name = name
    self.inputChannels = inputChannels
    self.outputChannels = outputChannels
    self.kernelSize = kernelSize
    self.activation = activation
    let values = initialization.values(
      count: kernelSize * inputChannels * outputChannels, fanIn: kernelSize * inputChannels,
      fanOut: kernelSize * outputChannels, random: &random)
    weight = Parameter(
      name: "\(name).weight", shape: [kernelSize, inputChannels, outputChannels], value: values,
      isRegularized: true)
    bias = Parameter(
      name: "\(name).bias", shape: [outputChannels],
      value: [Float](repeating: 0, count: outputChannels))
  }

  /// Positions per output sequence for an input of `length` positions: `length − kernelSize + 1`,
  /// floored at 0. Also maps a per-item valid length through the layer (for `GlobalPooling`).
  public func outputLength(forInputLength length: Int) -> Int {
    max(0, length - kernelSize + 1)
  }

  /// Trainable tensors: weight, bias.
  public var parameters: [Parameter] { [weight, bias] }

  /// Convolves a batch of sequences.
  /// - Parameters:
  ///   - input: `[batch, length, inputChannels]` with `length ≥ kernelSize`.
  ///   - training: Whether to keep the im2col matrix for `backward`.
  /// - Returns: `[batch, length − kernelSize + 1, outputChannels]`.
  /// - Complexity: `2 · batch · outputLength · kernelSize · inputChannels · outputChannels` flops.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    precondition(
      input.shape.count == 3 && input.shape[2] == inputChannels,
      "\(name): input shape \(input.shape), expected [batch, length, \(inputChannels)]")
    let batch = input.shape[0]
    let length = input.shape[1]
    precondition(length >= kernelSize, "\(name): length \(length) shorter than kernel \(kernelSize)")
    let outLength = length - kernelSize + 1
    let outRows = batch * outLength
    let width = kernelSize * inputChannels
    let outChannels = outputChannels
    let channels = inputChannels
    cachedInputShape = training ? input.shape : nil
    resize(&columns, to: outRows * width)
    resize(&output, to: outRows * outChannels)
    guard outRows > 0 else { return Tensor(shape: [batch, outLength, outChannels]) }
    input.storage.withUnsafeBufferPointer { px in
      columns.withUnsafeMutableBufferPointer { pc in
        // Valid padding, stride 1: the window of output (b, t) is `width` contiguous input values.
        for b in 0..<batch {
          for t in 0..<outLength {
            (pc.start + (b * outLength + t) * width)
              .update(from: px.start + (b * length + t) * channels, count: width)
          }
        }
      }
    }
    columns.withUnsafeBufferPointer { pc in
      weight.value.withUnsafeBufferPointer { pw in
        bias.value.withUnsafeBufferPointer { pb in
          output.withUnsafeMutableBufferPointer { out in
            broadcastRows(pb, into: out, rows: outRows, columns: outChannels)
            BLAS.gemm(
              m: outRows, n: outChannels, k: width, a: pc.start, lda: width, b: pw.start,
              ldb: outChannels, beta: 1, c: out.start, ldc: outChannels)
            if activation == .relu { VectorOps.relu(out) }
          }
        }
      }
    }
    return Tensor(shape: [batch, outLength, outChannels], storage: output)
  }

  /// Back-propagates through the last training-mode `forward`.
  /// - Parameter gradientOutput: `[batch, outputLength, outputChannels]`.
  /// - Returns: `[batch, length, inputChannels]`; adds into `weight.gradient` and `bias.gradient`.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let inputShape = cachedInputShape else {
      preconditionFailure("\(name): backward without a training-mode forward")
    }
    let batch = inputShape[0]
    let length = inputShape[1]
    let outLength = length - kernelSize + 1
    let outRows = batch * outLength
    let width = kernelSize * inputChannels
    let outChannels = outputChannels
    let channels = inputChannels
    precondition(
      gradientOutput.shape == [batch, outLength, outChannels],
      "\(name): gradient shape does not match the last forward")
    var gradientInput = [Float](repeating: 0, count: batch * length * channels)
    guard outRows > 0 else { return Tensor(shape: inputShape, storage: gradientInput) }
    resize(&maskedGradient, to: outRows * outChannels)
    resize(&columnGradient, to: outRows * width)
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
      accumulateColumnSums(pg, rows: outRows, columns: outChannels, into: &bias.gradient)
      // dW += colsᵀ · g : [width, outChannels]
      columns.withUnsafeBufferPointer { pc in
        weight.gradient.withUnsafeMutableBufferPointer { pdw in
          BLAS.gemm(
            transposeA: true, m: width, n: outChannels, k: outRows, a: pc.start, lda: width,
            b: pg.start, ldb: outChannels, beta: 1, c: pdw.start, ldc: outChannels)
        }
      }
      // dcols = g · Wᵀ : [outRows, width]
      weight.value.withUnsafeBufferPointer { pw in
        columnGradient.withUnsafeMutableBufferPointer { pdc in
          BLAS.gemm(
            transposeB: true, m: outRows, n: width, k: outChannels, a: pg.start,
            lda: outChannels, b: pw.start, ldb: outChannels, c: pdc.start, ldc: width)
        }
      }
    }
    // col2im: each window's gradient adds back onto its `width` contiguous input values.
    columnGradient.withUnsafeBufferPointer { pdc in
      gradientInput.withUnsafeMutableBufferPointer { pdx in
        for b in 0..<batch {
          for t in 0..<outLength {
            let source = (b * outLength + t) * width
            let target = (b * length + t) * channels
            for i in 0..<width { pdx[target + i] += pdc[source + i] }
          }
        }
      }
    }
    return Tensor(shape: inputShape, storage: gradientInput)
  }
}
