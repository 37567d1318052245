import LinearAlgebra

/// The rectifier `y = max(x, 0)`, element-wise on any shape (the derivative at 0 is taken as 0).
public final class ReLU: Layer {
  private var output: [Float] = []
  private var outputShape: [Int]?

  /// Creates the activation (it has no tensors).
  public init() {}

  /// Rectifies the input.
  /// - Parameters:
  ///   - input: Any shape.
  ///   - training: Whether `backward` will follow.
  /// - Returns: The same shape.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    resize(&output, to: input.count)
    input.storage.withUnsafeBufferPointer { px in
      output.withUnsafeMutableBufferPointer { py in
        for i in 0..<px.count { py[i] = px[i] > 0 ? px[i] : 0 }
      }
    }
    outputShape = training ? input.shape : nil
    return Tensor(shape: input.shape, storage: output)
  }

  /// Passes the gradient where the output was positive.
  /// - Parameter gradientOutput: The last output's shape.
  /// - Returns: The same shape.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let shape = outputShape else {
      preconditionFailure("ReLU: backward without a training-mode forward")
    }
    precondition(gradientOutput.shape == shape, "ReLU: gradient shape does not match the last forward")
    var gradient = gradientOutput
    output.withUnsafeBufferPointer { py in
      gradient.storage.withUnsafeMutableBufferPointer { pg in
        for i in 0..<pg.count where py[i] <= 0 { pg[i] = 0 }
      }
    }
    return gradient
  }
}
