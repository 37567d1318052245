import NeuralNetwork
import TestSupport
import XCTest

final class LayerTests: XCTestCase {
  // MARK: Conv1D

  /// The convolution by its definition: `y[b,t,o] = act(bias[o] + Σ_j Σ_c x[b,t+j,c] · w[j,c,o])`.
  private func naiveConvolution(_ conv: Conv1D, _ x: Tensor) -> [Float] {
    let (batch, length, channels) = (x.shape[0], x.shape[1], x.shape[2])
    let outLength = length - conv.kernelSize + 1
    let filters = conv.outputChannels
    var y = [Float](repeating: 0, count: batch * outLength * filters)
    for b in 0..<batch {
      for t in 0..<outLength {
        for o in 0..<filters {
          var sum = Double(conv.bias.value[o])
          for j in 0..<conv.kernelSize {
            for c in 0..<channels {
              sum +=
                Double(x.storage[(b * length + t + j) * channels + c])
                * Double(conv.weight.value[(j * channels + c) * filters + o])
            }
          }
          let value = Float(sum)
          y[(b * outLength + t) * filters + o] = conv.activation == .relu ? max(0, value) : value
        }
      }
    }
    return y
  }

  func testConv1DForwardMatchesNaiveLoopsOnOddShapes() {
    var rng = SeededGenerator(seed: 11)
    var random = NetworkRandom(seed: 1)
    for (batch, length, channels, filters, kernel) in [
      (1, 3, 1, 1, 3), (2, 7, 5, 3, 3), (3, 9, 4, 6, 2), (2, 17, 33, 7, 5), (1, 4, 2, 3, 1),
    ] {
      for activation in [Activation.linear, .relu] {
        let conv = Conv1D(
          name: "c", inputChannels: channels, outputChannels: filters, kernelSize: kernel,
          activation: activation, random: &random)
        for o in 0..<filters { conv.bias.value[o] = rng.uniform() }
        let x = GradientChecking.randomTensor([batch, length, channels], &rng)
        let y = conv.forward(x, training: false)
        XCTAssertEqual(y.shape, [batch, length - kernel + 1, filters])
        XCTAssertTrue(
          allClose(y.storage, naiveConvolution(conv, x), absolute: 1e-5, relative: 1e-4),
          "b=\(batch) L=\(length) c=\(channels) f=\(filters) k=\(kernel) \(activation)")
      }
    }
  }

  func testConv1DGradientsMatchFiniteDifferences() {
    var rng = SeededGenerator(seed: 12)
    var random = NetworkRandom(seed: 2)
    let linear = Conv1D(
      name: "conv", inputChannels: 3, outputChannels: 4, kernelSize: 3, random: &random)
    for o in 0..<4 { linear.bias.value[o] = rng.uniform() }
    GradientChecking.check(
      layer: linear, input: GradientChecking.randomTensor([2, 6, 3], &rng), rng: &rng)
    let rectified = Conv1D(
      name: "conv", inputChannels: 3, outputChannels: 4, kernelSize: 2, activation: .relu,
      random: &random)
    GradientChecking.check(
      layer: rectified, input: GradientChecking.randomTensor([2, 5, 3], &rng), epsilon: 1e-3,
      absolute: 5e-3, rng: &rng)
  }

  func testConv1DRepeatedBackwardAccumulatesGradients() {
    var rng = SeededGenerator(seed: 13)
    var random = NetworkRandom(seed: 3)
    let conv = Conv1D(name: "c", inputChannels: 2, outputChannels: 3, kernelSize: 3, random: &random)
    let x = GradientChecking.randomTensor([2, 5, 2], &rng)
    let g = GradientChecking.randomTensor([2, 3, 3], &rng)
    _ = conv.forward(x, training: true)
    _ = conv.backward(g)
    let once = conv.weight.gradient
    _ = conv.forward(x, training: true)
    _ = conv.backward(g)
    XCTAssertTrue(allClose(conv.weight.gradient, once.map { 2 * $0 }, absolute: 1e-5))
    XCTAssertEqual(conv.outputLength(forInputLength: 5), 3)
    XCTAssertEqual(conv.outputLength(forInputLength: 1), 0)
  }

  // MARK: Dense, ReLU, Flatten

  func testDenseForwardAndGradients() {
    var rng = SeededGenerator(seed: 21)
    var random = NetworkRandom(seed: 4)
    let dense = Dense(name: "fc", inputFeatures: 5, outputFeatures: 3, random: &random)
    for o in 0..<3 { dense.bias.value[o] = rng.uniform() }
    let x = GradientChecking.randomTensor([4, 5], &rng)
    let y = dense.forward(x, training: false)
    for r in 0..<4 {
      for o in 0..<3 {
        var sum = Double(dense.bias.value[o])
        for i in 0..<5 { sum += Double(x.storage[r * 5 + i]) * Double(dense.weight.value[i * 3 + o]) }
        XCTAssertEqual(y.storage[r * 3 + o], Float(sum), accuracy: 1e-5)
      }
    }
    GradientChecking.check(layer: dense, input: x, rng: &rng)
    let rectified = Dense(
      name: "fc", inputFeatures: 6, outputFeatures: 4, activation: .relu, random: &random)
    GradientChecking.check(
      layer: rectified, input: GradientChecking.randomTensor([3, 6], &rng), epsilon: 1e-3,
      absolute: 5e-3, rng: &rng)
  }

  func testReLUAndFlattenGradients() {
    var rng = SeededGenerator(seed: 22)
    // Keep inputs away from the kink so central differences are exact.
    var x = GradientChecking.randomTensor([3, 4, 2], &rng)
    for i in 0..<x.count where abs(x.storage[i]) < 0.1 { x.storage[i] = 0.5 }
    GradientChecking.check(layer: ReLU(), input: x, rng: &rng)
    let flatten = Flatten()
    let flat = flatten.forward(x, training: true)
    XCTAssertEqual(flat.shape, [3, 8])
    XCTAssertEqual(flat.storage, x.storage)
    GradientChecking.check(layer: flatten, input: x, rng: &rng)
  }

  // MARK: NetworkAverage

  func testNetworkAverageIsTheMeanOfItsMembersWithTheirGradients() {
    var rng = SeededGenerator(seed: 23)
    var random = NetworkRandom(seed: 5)
    let members = (1...3).map { index in
      Sequential([Dense(name: "m\(index).fc", inputFeatures: 4, outputFeatures: 2, random: &random)])
    }
    for member in members {
      for parameter in member.parameters {
        for i in 0..<parameter.count { parameter.value[i] = rng.uniform(-1...1) }
      }
    }
    let average = NetworkAverage(members)
    XCTAssertEqual(
      average.parameters.map(\.name),
      ["m1.fc.weight", "m1.fc.bias", "m2.fc.weight", "m2.fc.bias", "m3.fc.weight", "m3.fc.bias"])
    let x = GradientChecking.randomTensor([5, 4], &rng)
    let y = average.forward(x, training: false)
    XCTAssertEqual(y.shape, [5, 2])
    let outputs = members.map { $0.forward(x, training: false).storage }
    for i in 0..<y.count {
      XCTAssertEqual(y.storage[i], (outputs[0][i] + outputs[1][i] + outputs[2][i]) / 3, accuracy: 1e-5)
    }
    GradientChecking.check(layer: average, input: x, rng: &rng)
    // One member is that member.
    let single = NetworkAverage([members[0]])
    XCTAssertEqual(single.forward(x, training: false).storage, outputs[0])
  }

  // MARK: BatchNorm

  func testBatchNormGradientsInTraining() {
    var rng = SeededGenerator(seed: 31)
    let norm = BatchNorm(name: "bn", features: 3)
    for c in 0..<3 {
      norm.gamma.value[c] = rng.uniform(0.5...1.5)
      norm.beta.value[c] = rng.uniform()
    }
    GradientChecking.check(
      layer: norm, input: GradientChecking.randomTensor([5, 3], &rng, range: -2...2), epsilon: 1e-2,
      rng: &rng)
  }

  func testBatchNormTrainingAndInferenceModes() {
    var rng = SeededGenerator(seed: 32)
    let norm = BatchNorm(name: "bn", features: 2, momentum: 0.9, epsilon: 1e-3)
    let x = GradientChecking.randomTensor([8, 2], &rng, range: 1...5)
    let y = norm.forward(x, training: true)
    // Training output: zero mean, unit (biased) variance per feature.
    for c in 0..<2 {
      let column = (0..<8).map { Double(y.storage[$0 * 2 + c]) }
      let mean = column.reduce(0, +) / 8
      let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 8
      XCTAssertEqual(mean, 0, accuracy: 1e-5)
      XCTAssertEqual(variance, 1, accuracy: 1e-2)
      let inputs = (0..<8).map { Double(x.storage[$0 * 2 + c]) }
      let batchMean = inputs.reduce(0, +) / 8
      let batchVariance = inputs.map { ($0 - batchMean) * ($0 - batchMean) }.reduce(0, +) / 8
      XCTAssertEqual(Double(norm.runningMean.value[c]), 0.1 * batchMean, accuracy: 1e-5)
      XCTAssertEqual(Double(norm.runningVariance.value[c]), 0.9 + 0.1 * batchVariance, accuracy: 1e-5)
    }
    // Inference: running statistics, per sample, and no update of the statistics.
    let before = norm.runningMean.value
    let inference = norm.forward(x, training: false)
    XCTAssertEqual(norm.runningMean.value, before)
    for r in 0..<8 {
      for c in 0..<2 {
        let expected =
          (x.storage[r * 2 + c] - norm.runningMean.value[c])
          / (norm.runningVariance.value[c] + 1e-3).squareRoot()
        XCTAssertEqual(inference.storage[r * 2 + c], expected, accuracy: 1e-5)
      }
    }
    XCTAssertGreaterThan(maxAbsoluteDifference(inference.storage, y.storage), 0.1)
    let single = norm.forward(x.item(3), training: false)
    XCTAssertTrue(allClose(single.storage, Array(inference.storage[6..<8]), absolute: 1e-6))
  }

  // MARK: GlobalPooling

  func testGlobalPoolingIgnoresPaddedPositions() throws {
    var rng = SeededGenerator(seed: 41)
    for mode in [GlobalPooling.Mode.mean, .max, .meanAndMax, .logSumExp] {
      let pooling = GlobalPooling(mode: mode)
      var x = GradientChecking.randomTensor([3, 5, 2], &rng)
      let lengths = [5, 2, 3]
      try pooling.setValidLengths(lengths)
      let y = pooling.forward(x, training: false)
      XCTAssertEqual(y.shape, [3, mode == .meanAndMax ? 4 : 2])
      // Expected values from the valid prefixes only.
      for b in 0..<3 {
        for c in 0..<2 {
          let values = (0..<lengths[b]).map { x.storage[(b * 5 + $0) * 2 + c] }
          let mean = values.reduce(0, +) / Float(values.count)
          let maximum = values.max() ?? 0
          let logSumExp = Float(log(values.map { exp(Double($0)) }.reduce(0, +)))
          switch mode {
          case .mean: XCTAssertEqual(y.storage[b * 2 + c], mean, accuracy: 1e-6)
          case .max: XCTAssertEqual(y.storage[b * 2 + c], maximum)
          case .meanAndMax:
            XCTAssertEqual(y.storage[b * 4 + c], mean, accuracy: 1e-6)
            XCTAssertEqual(y.storage[b * 4 + 2 + c], maximum)
          case .logSumExp: XCTAssertEqual(y.storage[b * 2 + c], logSumExp, accuracy: 1e-5)
          }
        }
      }
      // Garbage in the padding changes nothing.
      for b in 0..<3 {
        for t in lengths[b]..<5 {
          for c in 0..<2 { x.storage[(b * 5 + t) * 2 + c] = 1000 }
        }
      }
      XCTAssertEqual(pooling.forward(x, training: false).storage, y.storage)
      // Gradients, and none flowing into the padding.
      GradientChecking.check(layer: pooling, input: x, epsilon: 1e-3, rng: &rng)
      _ = pooling.forward(x, training: true)
      let g = pooling.backward(GradientChecking.randomTensor(y.shape, &rng))
      for b in 0..<3 {
        for t in lengths[b]..<5 {
          for c in 0..<2 { XCTAssertEqual(g.storage[(b * 5 + t) * 2 + c], 0) }
        }
      }
    }
  }

  func testGlobalPoolingRejectsNegativeLengthsAndHandlesEmptyItems() throws {
    let pooling = GlobalPooling(mode: .meanAndMax)
    XCTAssertThrowsError(try pooling.setValidLengths([1, -1])) { error in
      XCTAssertEqual((error as? NetworkError)?.code, .invalidInput)
    }
    try pooling.setValidLengths([0, 9])
    let x = Tensor(shape: [2, 2, 1], storage: [3, 4, -1, -2])
    XCTAssertEqual(pooling.forward(x, training: false).storage, [0, 0, -1.5, -1])
  }

  func testLogSumExpPoolingIsStableForLargeLogits() throws {
    // exp(200) overflows Float; the shifted form gives 200 + log 2 and weights ½, ½.
    let pooling = GlobalPooling(mode: .logSumExp)
    try pooling.setValidLengths([2])
    let x = Tensor(shape: [1, 3, 1], storage: [200, 200, 5000])
    let y = pooling.forward(x, training: true)
    XCTAssertEqual(y.storage[0], 200 + Float(log(2.0)), accuracy: 1e-3)
    XCTAssertEqual(pooling.backward(Tensor(shape: [1, 1], storage: [2])).storage, [1, 1, 0])
  }

  // MARK: Dropout

  func testDropoutIsIdentityAtInferenceAndSeeded() {
    var rng = SeededGenerator(seed: 51)
    let x = GradientChecking.randomTensor([50, 40], &rng, range: 1...2)
    var random = NetworkRandom(seed: 9)
    let dropout = Dropout(rate: 0.5, random: &random)
    XCTAssertEqual(dropout.forward(x, training: false), x)

    let first = dropout.forward(x, training: true)
    let zeros = first.storage.filter { $0 == 0 }.count
    XCTAssertEqual(Double(zeros) / Double(x.count), 0.5, accuracy: 0.05)
    for (y, v) in zip(first.storage, x.storage) where y != 0 { XCTAssertEqual(y, 2 * v) }
    // Backward multiplies by the same mask.
    let ones = Tensor(shape: x.shape, repeating: 1)
    let g = dropout.backward(ones)
    for (gi, (y, v)) in zip(g.storage, zip(first.storage, x.storage)) {
      XCTAssertEqual(gi, y / v, accuracy: 1e-6)
    }
    // A new mask next time; the same masks with the same seed.
    XCTAssertNotEqual(dropout.forward(x, training: true), first)
    var again = NetworkRandom(seed: 9)
    XCTAssertEqual(Dropout(rate: 0.5, random: &again).forward(x, training: true), first)
  }
}
