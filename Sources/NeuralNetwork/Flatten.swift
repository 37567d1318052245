/// Collapses every axis but the batch: `[batch, d1, d2, …]` → `[batch, d1 · d2 · …]`.
///
/// For `[batch, length, channels]` the result row is position after position, channels varying
/// fastest (the Keras `Flatten` order for channels-last data). No copy is made.
public final class Flatten: Layer {
  private var inputShape: [Int]?

  /// Creates the layer (it has no tensors).
  public init() {}

  /// Reshapes the input.
  /// - Parameters:
  ///   - input: `[batch, …]`.
  ///   - training: Whether `backward` will follow.
  /// - Returns: `[batch, itemCount]`.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    inputShape = training ? input.shape : nil
    return input.reshaped([input.batch, input.itemCount])
  }

  /// Restores the input's shape.
  /// - Parameter gradientOutput: `[batch, itemCount]`.
  /// - Returns: The last input's shape.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let shape = inputShape else {
      preconditionFailure("Flatten: backward without a training-mode forward")
    }
    return gradientOutput.reshaped(shape)
  }
}
