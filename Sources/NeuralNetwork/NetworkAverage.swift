import LinearAlgebra

/// The mean of several networks' outputs on the same input: an ensemble as one layer.
///
/// Every member maps the input (any shape) to outputs of one common shape (e.g. `[batch, 2]`
/// logits); the layer returns their element-wise mean. Members are usually trained apart, from
/// their own seeds, and joined afterwards (their tensor names must differ); `backward` also works,
/// handing each member `1/members` of the gradient and summing what they return.
public final class NetworkAverage: Layer {
  /// The networks averaged, in tensor order.
  public let members: [Sequential]

  /// Creates the average.
  /// - Parameter members: At least one network; tensor names must be unique across members.
  public init(_ members: [Sequential]) {
    precondition(!members.isEmpty, "NetworkAverage needs at least one member")
    self.members = members
  }

  /// Runs every member and averages their outputs.
  /// - Parameters:
  ///   - input: Any shape the members take.
  ///   - training: Training mode, passed to every member.
  /// - Returns: The members' common output shape.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    var sum = members[0].forward(input, training: training)
    let scale = 1 / Float(members.count)
    for member in members.dropFirst() {
      let output = member.forward(input, training: training)
      precondition(output.shape == sum.shape, "NetworkAverage: members' output shapes differ")
      for i in 0..<sum.count { sum.storage[i] += output.storage[i] }
    }
    for i in 0..<sum.count { sum.storage[i] *= scale }
    return sum
  }

  /// Hands each member `gradientOutput / members` and sums the input gradients they return.
  /// - Parameter gradientOutput: The last output's shape.
  /// - Returns: The last input's shape.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    var share = gradientOutput
    let scale = 1 / Float(members.count)
    for i in 0..<share.count { share.storage[i] *= scale }
    var sum = members[0].backward(share)
    for member in members.dropFirst() {
      let gradient = member.backward(share)
      for i in 0..<sum.count { sum.storage[i] += gradient.storage[i] }
    }
    return sum
  }

  /// Every member's trainable tensors, member by member.
  public var parameters: [Parameter] { members.flatMap(\.parameters) }

  /// Every member's state tensors, member by member.
  public var stateTensors: [Parameter] { members.flatMap(\.stateTensors) }
}
