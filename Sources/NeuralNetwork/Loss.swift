import LinearAlgebra

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A loss value and its gradient with respect to the network output.
public struct LossResult: Sendable {
  /// The scalar loss.
  public var loss: Float
  /// `∂loss/∂logits`, the logits' shape `[batch, classes]`.
  public var gradient: Tensor
}

/// Row-wise softmax of logits.
/// - Parameter logits: `[batch, classes]`.
/// - Returns: `[batch, classes]` probabilities, each row summing to 1.
public func softmax(_ logits: Tensor) -> Tensor {
  precondition(logits.shape.count == 2, "softmax: logits shape \(logits.shape), expected rank 2")
  var probabilities = logits
  probabilities.storage.withUnsafeMutableBufferPointer {
    VectorOps.softmaxRows($0, rows: logits.shape[0], columns: logits.shape[1])
  }
  return probabilities
}

/// Softmax cross-entropy with optional class and sample weights, fused for a stable gradient.
///
/// With `p = softmax(logits)` and per-sample weight `w_i = classWeights[y_i] · sampleWeights[i]`
/// (each factor 1 when not given), the loss is the Keras `sum_over_batch_size` reduction
/// `L = (1 / batch) · Σ_i w_i · (−log p[i, y_i])`, and `∂L/∂logits[i, c] = w_i · (p[i, c] − [c = y_i])
/// / batch`. Keras' `class_weight` of `fit` behaves exactly like these class weights.
/// - Parameters:
///   - logits: `[batch, classes]` unnormalised scores.
///   - labels: `[batch]` class indices in `0 ..< classes`.
///   - classWeights: `[classes]` non-negative weights, or `nil`.
///   - sampleWeights: `[batch]` non-negative weights, or `nil`.
/// - Returns: The mean weighted loss and its gradient `[batch, classes]`.
/// - Throws: `NetworkError.invalidInput` for a label out of range or weights of the wrong count.
public func softmaxCrossEntropy(
  logits: Tensor, labels: [Int], classWeights: [Float]? = nil, sampleWeights: [Float]? = nil
) throws(NetworkError) -> LossResult {
  guard logits.shape.count == 2 else {
    throw NetworkError(.invalidInput, "logits shape \(logits.shape), expected [batch, classes]")
  }
  let batch = logits.shape[0]
  let classes = logits.shape[1]
  guard labels.count == batch else {
    throw NetworkError(.invalidInput, "\(labels.count) labels for a batch of \(batch)")
  }
  if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classes }) {
    throw NetworkError(.invalidInput, "label \(labels[bad]) of item \(bad) is not in 0..<\(classes)")
  }
  if let classWeights, classWeights.count != classes {
    throw NetworkError(.invalidInput, "\(classWeights.count) class weights for \(classes) classes")
  }
  if let sampleWeights, sampleWeights.count != batch {
    throw NetworkError(.invalidInput, "\(sampleWeights.count) sample weights for a batch of \(batch)")
  }
  guard batch > 0 else { return LossResult(loss: 0, gradient: logits) }
  var gradient = softmax(logits)
  var total: Double = 0
  let scale = 1 / Float(batch)
  gradient.storage.withUnsafeMutableBufferPointer { pg in
    for i in 0..<batch {
      let weight = (classWeights?[labels[i]] ?? 1) * (sampleWeights?[i] ?? 1)
      let base = i * classes
      let p = pg[base + labels[i]]
      total += Double(weight) * -log(Swift.max(Double(p), Double(Float.leastNormalMagnitude)))
      pg[base + labels[i]] -= 1
      let factor = weight * scale
      for c in 0..<classes { pg[base + c] *= factor }
    }
  }
  return LossResult(loss: Float(total / Double(batch)), gradient: gradient)
}

/// The L2 penalty `λ · Σ w²` over the regularised parameters (weights; not biases or batch-norm
/// tensors), as Keras' `kernel_regularizer=l2(λ)`. Its gradient `2λw` is added by `Adam` (`l2`).
/// - Parameters:
///   - parameters: The network's parameters.
///   - lambda: The coefficient `λ ≥ 0`.
/// - Returns: The penalty to add to the data loss when reporting it.
public func l2Penalty(_ parameters: [Parameter], lambda: Float) -> Float {
  var sum: Double = 0
  for parameter in parameters where parameter.isRegularized {
    for v in parameter.value { sum += Double(v) * Double(v) }
  }
  return Float(Double(lambda) * sum)
}
