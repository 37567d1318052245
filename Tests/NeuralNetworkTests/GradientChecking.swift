import NeuralNetwork
import TestSupport
import XCTest

/// Random tensors and central-difference gradient checks shared by the layer tests.
enum GradientChecking {
  /// A tensor of uniform values in `range`.
  static func randomTensor(
    _ shape: [Int], _ rng: inout SeededGenerator, range: ClosedRange<Float> = -1...1
  ) -> Tensor {
    Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in rng.uniform(range) })
  }

  /// `Σ output · weights`, accumulated in `Double`.
  static func weightedSum(_ output: Tensor, _ weights: Tensor) -> Double {
    zip(output.storage, weights.storage).reduce(0) { $0 + Double($1.0) * Double($1.1) }
  }

  /// Whether analytic and numeric derivatives agree within `absolute + relative · max(|a|, |n|)`.
  static func agree(_ analytic: Float, _ numeric: Double, absolute: Double, relative: Double) -> Bool {
    let a = Double(analytic)
    return abs(a - numeric) <= absolute + relative * max(abs(a), abs(numeric))
  }

  /// Checks `∂L/∂input` and `∂L/∂parameter` of `forward` for `L = Σ forward(input) · R` against
  /// central differences.
  /// - Parameters:
  ///   - parameters: The parameters whose gradients `backward` fills.
  ///   - forward: Runs the layer (or network) in training mode.
  ///   - backward: Back-propagates a gradient, returning the input gradient.
  ///   - input: The input.
  ///   - epsilon: Finite-difference step.
  static func check(
    parameters: [Parameter], forward: (Tensor) -> Tensor, backward: (Tensor) -> Tensor,
    input: Tensor, epsilon: Float = 1e-2, absolute: Double = 2e-3, relative: Double = 1e-2,
    rng: inout SeededGenerator, file: StaticString = #filePath, line: UInt = #line
  ) {
    for parameter in parameters { parameter.zeroGradient() }
    let output = forward(input)
    let weights = randomTensor(output.shape, &rng)
    let gradientInput = backward(weights)
    XCTAssertEqual(gradientInput.shape, input.shape, "input gradient shape", file: file, line: line)

    var mismatches: [String] = []
    var probe = input
    for i in 0..<input.count {
      let original = probe.storage[i]
      probe.storage[i] = original + epsilon
      let plus = weightedSum(forward(probe), weights)
      probe.storage[i] = original - epsilon
      let minus = weightedSum(forward(probe), weights)
      probe.storage[i] = original
      let numeric = (plus - minus) / (2 * Double(epsilon))
      if !agree(gradientInput.storage[i], numeric, absolute: absolute, relative: relative) {
        mismatches.append("input[\(i)]: analytic \(gradientInput.storage[i]) numeric \(numeric)")
      }
    }
    for parameter in parameters {
      let analytic = parameter.gradient
      for i in 0..<parameter.count {
        let original = parameter.value[i]
        parameter.value[i] = original + epsilon
        let plus = weightedSum(forward(input), weights)
        parameter.value[i] = original - epsilon
        let minus = weightedSum(forward(input), weights)
        parameter.value[i] = original
        let numeric = (plus - minus) / (2 * Double(epsilon))
        if !agree(analytic[i], numeric, absolute: absolute, relative: relative) {
          mismatches.append("\(parameter.name)[\(i)]: analytic \(analytic[i]) numeric \(numeric)")
        }
      }
    }
    XCTAssertTrue(
      mismatches.isEmpty, "\(mismatches.count) mismatches: \(mismatches.prefix(5))", file: file,
      line: line)
  }

  /// `check` for one layer in training mode.
  static func check(
    layer: any Layer, input: Tensor, epsilon: Float = 1e-2, absolute: Double = 2e-3,
    relative: Double = 1e-2, rng: inout SeededGenerator, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    check(
      parameters: layer.parameters, forward: { layer.forward($0, training: true) },
      backward: { layer.backward($0) }, input: input, epsilon: epsilon, absolute: absolute,
      relative: relative, rng: &rng, file: file, line: line)
  }
}
