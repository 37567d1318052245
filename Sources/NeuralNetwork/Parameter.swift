/// A named tensor a layer owns: its values, the gradient of the loss with respect to them, and
/// how the optimizer treats it.
///
/// Trainable parameters (weights, biases, batch-norm scale and shift) have a gradient of the same
/// size as the values; state tensors (batch-norm running statistics) are not trainable and have an
/// empty gradient. Values are flat row-major; `shape` gives their layout. Layers accumulate into
/// `gradient` during `backward`, so clear it (`zeroGradient()`; `Adam.step()` does it too) between steps.
public final class Parameter {
  /// A unique, dotted name such as `conv1.weight`; the key used when saving and loading.
  public let name: String
  /// The tensor's shape; the product of its entries equals `value.count`.
  public let shape: [Int]
  /// The values, flat row-major. Keep the count unchanged.
  public var value: [Float]
  /// `∂loss/∂value`, accumulated by `backward`; empty when not trainable.
  public var gradient: [Float]
  /// Whether the optimizer updates this tensor.
  public let isTrainable: Bool
  /// Whether L2 weight decay applies (weights only; not biases, batch-norm tensors or state).
  public let isRegularized: Bool

  /// Creates a parameter.
  /// - Parameters:
  ///   - name: Unique name (`layer.tensor`).
  ///   - shape: Layout of `value`.
  ///   - value: Initial values; `value.count` must equal the product of `shape`.
  ///   - isTrainable: Whether it gets a gradient and optimizer updates.
  ///   - isRegularized: Whether L2 weight decay applies to it.
  public init(
    name: String, shape: [Int], value: [Float], isTrainable: Bool = true, isRegularized: Bool = false
  ) {
    precondition(
      value.count == shape.reduce(1, *), "\(name): \(value.count) values for shape \(shape)")
    self.name = name
    self.shape = shape
    self.value = value
    self.gradient = isTrainable ? [Float](repeating: 0, count: value.count) : []
    self.isTrainable = isTrainable
    self.isRegularized = isRegularized && isTrainable
  }

  /// Number of scalar values.
  public var count: Int { value.count }

  /// Sets the gradient to zero (no-op for state tensors).
  public func zeroGradient() {
    gradient.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
  }
}

/// A tensor by name, shape and values: the unit a model bundle stores.
public struct NamedTensor: Sendable, Equatable {
  /// The tensor's key, e.g. `dense1.bias`.
  public var name: String
  /// The shape; the product of its entries equals `values.count`.
  public var shape: [Int]
  /// Flat row-major values.
  public var values: [Float]

  /// Creates a named tensor.
  public init(name: String, shape: [Int], values: [Float]) {
    self.name = name
    self.shape = shape
    self.values = values
  }
}
