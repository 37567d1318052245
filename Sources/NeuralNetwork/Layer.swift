import LinearAlgebra

/// A differentiable building block with its own parameters and cached activations.
///
/// Tensor layouts are described on `Tensor`: `[batch, features]` for vectors and
/// `[batch, length, channels]` for sequences; each layer documents what it takes and returns.
///
/// Protocol: `backward` follows a `forward(_:training: true)` and differentiates that call; it
/// returns `∂loss/∂input` and *adds* `∂loss/∂parameter` into each parameter's `gradient`.
/// An inference-mode forward (`training: false`) keeps no activations for `backward` and reuses the
/// layer's workspaces, so a network that only predicts allocates little per call.
/// Layers are reference types holding mutable caches; they are not `Sendable`: one network per
/// thread.
public protocol Layer: AnyObject {
  /// Computes the layer's output (caching what `backward` needs when `training`).
  /// - Parameters:
  ///   - input: The input batch (shape documented by each layer).
  ///   - training: Training mode (dropout active; batch-norm uses batch statistics and updates its
  ///     running statistics; activations kept for `backward`) or inference mode.
  /// - Returns: The output batch.
  func forward(_ input: Tensor, training: Bool) -> Tensor

  /// Back-propagates through the most recent training-mode `forward`.
  /// - Parameter gradientOutput: `∂loss/∂output`, the shape of the last output.
  /// - Returns: `∂loss/∂input`, the shape of the last input.
  func backward(_ gradientOutput: Tensor) -> Tensor

  /// Trainable tensors (weights, biases, scales), in a fixed order.
  var parameters: [Parameter] { get }

  /// Non-trainable state saved with the model (batch-norm running statistics), in a fixed order.
  var stateTensors: [Parameter] { get }
}

extension Layer {
  /// No trainable tensors by default.
  public var parameters: [Parameter] { [] }

  /// No state tensors by default.
  public var stateTensors: [Parameter] { [] }
}

/// An element-wise activation fused into `Dense` and `Conv1D` (as Keras' `activation=` argument).
public enum Activation: Sendable, Equatable {
  /// `y = x`.
  case linear
  /// `y = max(x, 0)`; the derivative at 0 is taken as 0.
  case relu
}

/// How a weight tensor's initial values are drawn (biases start at zero).
public enum WeightInitialization: Sendable, Equatable {
  /// Uniform in `±sqrt(6 / (fanIn + fanOut))` (Glorot & Bengio 2010; the Keras default).
  case glorotUniform
  /// Uniform in `±sqrt(6 / fanIn)` (He et al. 2015, for ReLU layers).
  case heUniform

  /// Draws `count` initial values.
  /// - Parameters:
  ///   - count: Number of values.
  ///   - fanIn: Inputs feeding one output unit.
  ///   - fanOut: Outputs fed by one input unit.
  ///   - random: The generator; advanced by `count` draws.
  /// - Returns: `[count]` values.
  package func values(count: Int, fanIn: Int, fanOut: Int, random: inout NetworkRandom) -> [Float] {
    let limit: Float
    switch self {
    case .glorotUniform: limit = (6 / Float(max(1, fanIn + fanOut))).squareRoot()
    case .heUniform: limit = (6 / Float(max(1, fanIn))).squareRoot()
    }
    var values = [Float](repeating: 0, count: count)
    for i in 0..<count { values[i] = random.uniform(-limit, limit) }
    return values
  }
}

/// Makes `buffer` hold exactly `count` values, reallocating (zero-filled) only when the size changes.
@inline(__always)
package func resize(_ buffer: inout [Float], to count: Int) {
  if buffer.count != count { buffer = [Float](repeating: 0, count: count) }
}

/// Adds the column sums of `g` (`[rows, columns]`, flat) into `target` (`[columns]`).
package func accumulateColumnSums(
  _ g: UnsafeBufferPointer<Float>, rows: Int, columns: Int, into target: inout [Float]
) {
  precondition(target.count == columns && g.count >= rows * columns)
  target.withUnsafeMutableBufferPointer { pt in
    for r in 0..<rows {
      let base = r * columns
      for c in 0..<columns { pt[c] += g[base + c] }
    }
  }
}

/// Fills every row of `out` (`[rows, columns]`) with `bias` (`[columns]`).
func broadcastRows(
  _ bias: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>, rows: Int,
  columns: Int
) {
  precondition(bias.count >= columns && out.count >= rows * columns)
  guard columns > 0 else { return }
  for r in 0..<rows {
    (out.start + r * columns).update(from: bias.start, count: columns)
  }
}

/// Copies `gradient` with the entries zeroed where `output ≤ 0` (the ReLU derivative) into `target`.
func maskReLUGradient(
  _ gradient: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
  into target: UnsafeMutableBufferPointer<Float>
) {
  precondition(gradient.count == output.count && target.count >= gradient.count)
  for i in 0..<gradient.count { target[i] = output[i] > 0 ? gradient[i] : 0 }
}

extension UnsafeBufferPointer where Element == Float {
  /// The first element's address; the buffer must not be empty (an internal invariant).
  @inline(__always)
  var start: UnsafePointer<Float> {
    guard let base = baseAddress else { preconditionFailure("empty buffer") }
    return base
  }
}

extension UnsafeMutableBufferPointer where Element == Float {
  /// The first element's address; the buffer must not be empty (an internal invariant).
  @inline(__always)
  var start: UnsafeMutablePointer<Float> {
    guard let base = baseAddress else { preconditionFailure("empty buffer") }
    return base
  }
}
