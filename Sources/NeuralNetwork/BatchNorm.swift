/// Batch normalisation of each feature over the batch (Ioffe & Szegedy 2015, "Batch
/// Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
/// Algorithm 1).
///
/// Training: `y = gamma · (x − μ_B) / sqrt(σ²_B + epsilon) + beta` with the batch mean and biased
/// variance of each feature; the running statistics move towards them:
/// `running ← momentum · running + (1 − momentum) · batch` (the Keras convention; PyTorch's
/// `momentum` is `1 −` this). Inference: the running statistics replace the batch statistics.
/// The last axis holds the features; every other position counts as a sample, so
/// `[batch, features]` (the usual case) and `[batch, length, features]` both work.
public final class BatchNorm: Layer {
  /// Prefix of the tensor names.
  public let name: String
  /// Features (size of the last axis).
  public let features: Int
  /// Weight of the old running value in each update.
  public let momentum: Float
  /// Added to the variance before the square root.
  public let epsilon: Float
  /// Scale `[features]`, initially 1 (no L2).
  public let gamma: Parameter
  /// Shift `[features]`, initially 0 (no L2).
  public let beta: Parameter
  /// Running mean `[features]` (state), initially 0.
  public let runningMean: Parameter
  /// Running biased variance `[features]` (state), initially 1.
  public let runningVariance: Parameter

  private var normalized: [Float] = []
  private var inverseDeviation: [Float] = []
  private var shift: [Float] = []
  private var output: [Float] = []
  private var cachedShape: [Int]?

  /// Creates a batch-norm layer.
  /// - Parameters:
  ///   - name: Tensor name prefix (`name.gamma`, `name.beta`, `name.running_mean`,
  ///     `name.running_variance`).
  ///   - features: Features per sample (≥ 1).
  ///   - momentum: Running-statistics momentum in `[0, 1)` (Keras default 0.99).
  ///   - epsilon: Variance floor (Keras default 0.001).
  public init(name: String, features: Int, momentum: Float = 0.99, epsilon: Float = 1e-3) {
    precondition(features > 0, "BatchNorm needs ≥ 1 feature")
    precondition(momentum >= 0 && momentum < 1 && epsilon > 0, "BatchNorm: bad momentum or epsilon")
    self.name = name
    self.features = features
    self.momentum = momentum
    self.epsilon = epsilon
    let ones = [Float](repeating: 1, count: features)
    let zeros = [Float](repeating: 0, count: features)
    gamma = Parameter(name: "\(name).gamma", shape: [features], value: ones)
    beta = Parameter(name: "\(name).beta", shape: [features], value: zeros)
    runningMean = Parameter(
      name: "\(name).running_mean", shape: [features], value: zeros, isTrainable: false)
    runningVariance = Parameter(
      name: "\(name).running_variance", shape: [features], value: ones, isTrainable: false)
    inverseDeviation = ones
    shift = zeros
  }

  /// Trainable tensors: gamma, beta.
  public var parameters: [Parameter] { [gamma, beta] }

  /// State tensors: running mean, running variance.
  public var stateTensors: [Parameter] { [runningMean, runningVariance] }

  /// Normalises each feature.
  /// - Parameters:
  ///   - input: `[…, features]`; in training at least one sample (one sample normalises to `beta`).
  ///   - training: Batch statistics (and running-statistics update) or running statistics.
  /// - Returns: The input's shape.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    precondition(
      input.shape.last == features, "\(name): input shape \(input.shape), last axis must be \(features)")
    let f = features
    let rows = input.count / f
    cachedShape = training ? input.shape : nil
    resize(&output, to: rows * f)
    guard rows > 0 else { return Tensor(shape: input.shape) }
    if training {
      var sums = [Double](repeating: 0, count: f)
      var squares = [Double](repeating: 0, count: f)
      input.storage.withUnsafeBufferPointer { px in
        for r in 0..<rows {
          for c in 0..<f { sums[c] += Double(px[r * f + c]) }
        }
        for c in 0..<f { shift[c] = Float(sums[c] / Double(rows)) }
        for r in 0..<rows {
          for c in 0..<f {
            let d = Double(px[r * f + c]) - Double(shift[c])
            squares[c] += d * d
          }
        }
      }
      for c in 0..<f {
        let batchVariance = Float(squares[c] / Double(rows))
        inverseDeviation[c] = 1 / (batchVariance + epsilon).squareRoot()
        runningMean.value[c] = momentum * runningMean.value[c] + (1 - momentum) * shift[c]
        runningVariance.value[c] =
          momentum * runningVariance.value[c] + (1 - momentum) * batchVariance
      }
      resize(&normalized, to: rows * f)
    } else {
      for c in 0..<f {
        shift[c] = runningMean.value[c]
        inverseDeviation[c] = 1 / (runningVariance.value[c] + epsilon).squareRoot()
      }
    }
    input.storage.withUnsafeBufferPointer { px in
      output.withUnsafeMutableBufferPointer { out in
        normalized.withUnsafeMutableBufferPointer { pn in
          inverseDeviation.withUnsafeBufferPointer { pi in
            shift.withUnsafeBufferPointer { pmu in
              gamma.value.withUnsafeBufferPointer { pg in
                beta.value.withUnsafeBufferPointer { pb in
                  for r in 0..<rows {
                    let base = r * f
                    for c in 0..<f {
                      let xhat = (px[base + c] - pmu[c]) * pi[c]
                      if training { pn[base + c] = xhat }
                      out[base + c] = pg[c] * xhat + pb[c]
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return Tensor(shape: input.shape, storage: output)
  }

  /// Back-propagates through the last training-mode `forward` (batch statistics).
  /// - Parameter gradientOutput: The last input's shape.
  /// - Returns: The same shape; adds into `gamma.gradient` and `beta.gradient`.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let shape = cachedShape else {
      preconditionFailure("\(name): backward without a training-mode forward")
    }
    precondition(gradientOutput.shape == shape, "\(name): gradient shape does not match the last forward")
    let f = features
    let rows = gradientOutput.count / f
    guard rows > 0 else { return Tensor(shape: shape) }
    var sumGradient = [Float](repeating: 0, count: f)
    var sumGradientXhat = [Float](repeating: 0, count: f)
    gradientOutput.storage.withUnsafeBufferPointer { pg in
      normalized.withUnsafeBufferPointer { pn in
        for r in 0..<rows {
          let base = r * f
          for c in 0..<f {
            sumGradient[c] += pg[base + c]
            sumGradientXhat[c] += pg[base + c] * pn[base + c]
          }
        }
      }
    }
    for c in 0..<f {
      gamma.gradient[c] += sumGradientXhat[c]
      beta.gradient[c] += sumGradient[c]
    }
    let n = Float(rows)
    var gradientInput = [Float](repeating: 0, count: rows * f)
    gradientOutput.storage.withUnsafeBufferPointer { pg in
      normalized.withUnsafeBufferPointer { pn in
        inverseDeviation.withUnsafeBufferPointer { pi in
          gamma.value.withUnsafeBufferPointer { pgamma in
            gradientInput.withUnsafeMutableBufferPointer { out in
              for r in 0..<rows {
                let base = r * f
                for c in 0..<f {
                  // dx = γ/σ · (g − mean(g) − x̂ · mean(g · x̂))
                  out[base + c] =
                    pgamma[c] * pi[c]
                    * (pg[base + c] - sumGradient[c] / n - pn[base + c] * sumGradientXhat[c] / n)
                }
              }
            }
          }
        }
      }
    }
    return Tensor(shape: shape, storage: gradientInput)
  }
}
