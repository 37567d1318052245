/// Inverted dropout: in training each value is zeroed with probability `rate` and the survivors
/// are scaled by `1 / (1 − rate)`; at inference it is the identity.
///
/// The layer owns its generator (forked from the one given at construction), so a seeded network
/// draws the same masks on every run.
public final class Dropout: Layer {
  /// Probability of dropping a value, in `[0, 1)`.
  public let rate: Float
  private var random: NetworkRandom
  private var mask: [Float] = []
  private var maskShape: [Int]?

  /// Creates a dropout layer.
  /// - Parameters:
  ///   - rate: Drop probability in `[0, 1)`.
  ///   - random: Generator from which the layer forks its own stream (advanced by one draw).
  public init(rate: Float, random: inout NetworkRandom) {
    precondition(rate >= 0 && rate < 1, "dropout rate must be in [0, 1)")
    self.rate = rate
    self.random = random.fork()
  }

  /// Applies a fresh random mask in training, nothing at inference.
  /// - Parameters:
  ///   - input: Any shape.
  ///   - training: Whether to drop.
  /// - Returns: The same shape (the input itself at inference).
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    guard training else {
      maskShape = nil
      return input
    }
    maskShape = input.shape
    let count = input.count
    resize(&mask, to: count)
    let keep = 1 - rate
    let scale = 1 / keep
    var output = input
    mask.withUnsafeMutableBufferPointer { pm in
      output.storage.withUnsafeMutableBufferPointer { po in
        for i in 0..<count {
          let m: Float = random.nextUnit() < keep ? scale : 0
          pm[i] = m
          po[i] *= m
        }
      }
    }
    return output
  }

  /// Multiplies the gradient by the last mask.
  /// - Parameter gradientOutput: The last output's shape.
  /// - Returns: The same shape.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let shape = maskShape else {
      preconditionFailure("Dropout: backward without a training-mode forward")
    }
    precondition(gradientOutput.shape == shape, "Dropout: gradient shape mismatch")
    var gradient = gradientOutput
    mask.withUnsafeBufferPointer { pm in
      gradient.storage.withUnsafeMutableBufferPointer { pg in
        for i in 0..<pg.count { pg[i] *= pm[i] }
      }
    }
    return gradient
  }
}
