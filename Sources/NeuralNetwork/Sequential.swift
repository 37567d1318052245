/// A chain of layers applied in order; the network type a training pipeline works with.
///
/// It owns the layers, runs forward and backward through all of them, and exposes the named
/// tensors a model bundle stores (trainable parameters, then batch-norm running statistics).
public final class Sequential {
  /// The layers, first applied first.
  public let layers: [any Layer]

  /// Creates a network.
  /// - Parameter layers: The layers, in application order. Tensor names must be unique.
  public init(_ layers: [any Layer]) {
    self.layers = layers
    var seen = Set<String>()
    for tensor in layers.flatMap({ $0.parameters + $0.stateTensors }) {
      precondition(seen.insert(tensor.name).inserted, "duplicate tensor name '\(tensor.name)'")
    }
  }

  /// Trainable tensors of every layer, in layer order.
  public var parameters: [Parameter] { layers.flatMap(\.parameters) }

  /// Non-trainable state tensors of every layer, in layer order.
  public var stateTensors: [Parameter] { layers.flatMap(\.stateTensors) }

  /// Every tensor a saved model needs: `parameters`, then `stateTensors`.
  public var tensors: [Parameter] { parameters + stateTensors }

  /// Runs the input through every layer.
  /// - Parameters:
  ///   - input: The first layer's input (e.g. `[batch, length, channels]` for a CNN).
  ///   - training: Training mode (see `Layer.forward`).
  /// - Returns: The last layer's output.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    var x = input
    for layer in layers { x = layer.forward(x, training: training) }
    return x
  }

  /// Runs the input through every layer and keeps each layer's output (for intermediate features
  /// such as the convolution outputs and the penultimate dense activation).
  /// - Parameters:
  ///   - input: The first layer's input.
  ///   - training: Training mode.
  /// - Returns: `layers.count` tensors; element `i` is the output of `layers[i]`.
  public func forwardCollectingOutputs(_ input: Tensor, training: Bool) -> [Tensor] {
    var outputs: [Tensor] = []
    outputs.reserveCapacity(layers.count)
    var x = input
    for layer in layers {
      x = layer.forward(x, training: training)
      outputs.append(x)
    }
    return outputs
  }

  /// Back-propagates through every layer, last first, after a training-mode `forward`.
  /// - Parameter gradientOutput: `∂loss/∂output`, the last output's shape.
  /// - Returns: `∂loss/∂input`; parameter gradients are added into each `Parameter.gradient`.
  @discardableResult
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    var g = gradientOutput
    for layer in layers.reversed() { g = layer.backward(g) }
    return g
  }

  /// Sets every parameter's gradient to zero.
  public func zeroGradients() {
    for parameter in parameters { parameter.zeroGradient() }
  }

  /// Copies of all tensors with their names and shapes, for a model bundle writer.
  public func exportTensors() -> [NamedTensor] {
    tensors.map { NamedTensor(name: $0.name, shape: $0.shape, values: $0.value) }
  }

  /// Copies of all tensors keyed by name (the form `importTensors(_:)` takes back).
  public func exportTensorsByName() -> [String: NamedTensor] {
    Dictionary(uniqueKeysWithValues: exportTensors().map { ($0.name, $0) })
  }

  /// Loads every tensor of the network by name; entries the network does not have are ignored.
  ///
  /// Nothing is changed unless every tensor is present with the right shape.
  /// - Parameter tensors: Saved tensors keyed by name.
  /// - Throws: `NetworkError` with code `.missingTensor` or `.shapeMismatch`.
  public func importTensors(_ tensors: [String: NamedTensor]) throws(NetworkError) {
    let targets = self.tensors
    var sources: [NamedTensor] = []
    sources.reserveCapacity(targets.count)
    for target in targets {
      guard let source = tensors[target.name] else {
        throw NetworkError(.missingTensor, "tensor '\(target.name)' is missing")
      }
      guard source.shape == target.shape, source.values.count == target.count else {
        throw NetworkError(
          .shapeMismatch,
          "tensor '\(target.name)' has shape \(source.shape) (\(source.values.count) values), "
            + "the network needs \(target.shape)")
      }
      sources.append(source)
    }
    for (target, source) in zip(targets, sources) { target.value = source.values }
  }

  /// Loads every tensor of the network from a list of named tensors.
  /// - Parameter tensors: Saved tensors; names must be unique.
  /// - Throws: `NetworkError` with code `.duplicateTensor`, `.missingTensor` or `.shapeMismatch`.
  public func importTensors(_ tensors: [NamedTensor]) throws(NetworkError) {
    var byName: [String: NamedTensor] = [:]
    for tensor in tensors {
      guard byName.updateValue(tensor, forKey: tensor.name) == nil else {
        throw NetworkError(.duplicateTensor, "tensor '\(tensor.name)' is given more than once")
      }
    }
    try importTensors(byName)
  }
}
