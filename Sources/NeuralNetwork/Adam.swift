/// The Adam optimiser (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization",
/// Algorithm 1) with bias correction, written in the Keras form
/// `θ ← θ − lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ) · m / (sqrt(v) + ε)`.
///
/// L2 is *coupled*, like Keras' `kernel_regularizer=l2(λ)`: before the moment updates, `2λθ` is
/// added to the gradient of every regularised parameter (weights, not biases or batch-norm
/// tensors), so the penalty passes through Adam's scaling (unlike AdamW's decoupled decay).
public final class Adam {
  /// The parameters updated by `step()`, in a fixed order.
  public let parameters: [Parameter]
  /// Step size.
  public var learningRate: Float
  /// Decay of the first-moment estimate.
  public let beta1: Float
  /// Decay of the second-moment estimate.
  public let beta2: Float
  /// Added to `sqrt(v)` (Keras default `1e-7`).
  public let epsilon: Float
  /// Coupled L2 coefficient `λ` (the penalty is `λ · Σ w²`).
  public let l2: Float
  /// Number of `step()` calls so far.
  public private(set) var stepCount = 0

  private var firstMoments: [[Float]]
  private var secondMoments: [[Float]]

  /// Creates an optimiser for the trainable tensors among `parameters`.
  /// - Parameters:
  ///   - parameters: Typically `network.parameters`; non-trainable tensors are skipped.
  ///   - learningRate: Step size (Keras default 0.001).
  ///   - beta1: First-moment decay (0.9).
  ///   - beta2: Second-moment decay (0.999).
  ///   - epsilon: Denominator floor (1e-7).
  ///   - l2: Coupled L2 coefficient (0 = none).
  public init(
    parameters: [Parameter], learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999,
    epsilon: Float = 1e-7, l2: Float = 0
  ) {
    precondition(learningRate > 0 && beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)
    precondition(epsilon > 0 && l2 >= 0)
    self.parameters = parameters.filter(\.isTrainable)
    self.learningRate = learningRate
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.l2 = l2
    firstMoments = self.parameters.map { [Float](repeating: 0, count: $0.count) }
    secondMoments = firstMoments
  }

  /// Applies one update from the accumulated gradients, then zeroes them.
  public func step() {
    stepCount += 1
    let correction =
      (1 - power(beta2, stepCount)).squareRoot() / (1 - power(beta1, stepCount))
    let rate = learningRate * correction
    let (b1, b2, eps) = (beta1, beta2, epsilon)
    for (index, parameter) in parameters.enumerated() {
      let decay: Float = parameter.isRegularized ? 2 * l2 : 0
      firstMoments[index].withUnsafeMutableBufferPointer { m in
        secondMoments[index].withUnsafeMutableBufferPointer { v in
          parameter.gradient.withUnsafeMutableBufferPointer { g in
            parameter.value.withUnsafeMutableBufferPointer { w in
              for i in 0..<w.count {
                let gradient = g[i] + decay * w[i]
                m[i] = b1 * m[i] + (1 - b1) * gradient
                v[i] = b2 * v[i] + (1 - b2) * gradient * gradient
                w[i] -= rate * m[i] / (v[i].squareRoot() + eps)
                g[i] = 0
              }
            }
          }
        }
      }
    }
  }
}

/// `base` raised to `exponent` for the bias corrections, in `Double` for accuracy.
private func power(_ base: Float, _ exponent: Int) -> Float {
  var result: Double = 1
  var remaining = exponent
  var factor = Double(base)
  while remaining > 0 {
    if remaining & 1 == 1 { result *= factor }
    factor *= factor
    remaining >>= 1
  }
  return Float(result)
}
