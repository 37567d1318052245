import NeuralNetwork
import TestSupport
import XCTest

final class TrainingTests: XCTestCase {
  // MARK: Loss

  func testWeightedCrossEntropyValueAndGradient() throws {
    var rng = SeededGenerator(seed: 61)
    let logits = GradientChecking.randomTensor([4, 3], &rng, range: -2...2)
    let labels = [0, 2, 1, 2]
    let classWeights: [Float] = [1, 2, 0.5]
    let sampleWeights: [Float] = [1, 0.5, 2, 1]
    let result = try softmaxCrossEntropy(
      logits: logits, labels: labels, classWeights: classWeights, sampleWeights: sampleWeights)
    // The value by its definition.
    var expected: Double = 0
    for i in 0..<4 {
      let row = (0..<3).map { Double(logits.storage[i * 3 + $0]) }
      let logSum = log(row.map { exp($0) }.reduce(0, +))
      expected +=
        Double(classWeights[labels[i]] * sampleWeights[i]) * (logSum - row[labels[i]])
    }
    XCTAssertEqual(Double(result.loss), expected / 4, accuracy: 1e-5)
    // The gradient by central differences.
    var probe = logits
    for i in 0..<logits.count {
      let original = probe.storage[i]
      probe.storage[i] = original + 1e-2
      let plus = try softmaxCrossEntropy(
        logits: probe, labels: labels, classWeights: classWeights, sampleWeights: sampleWeights)
      probe.storage[i] = original - 1e-2
      let minus = try softmaxCrossEntropy(
        logits: probe, labels: labels, classWeights: classWeights, sampleWeights: sampleWeights)
      probe.storage[i] = original
      let numeric = (Double(plus.loss) - Double(minus.loss)) / 2e-2
      XCTAssertTrue(
        GradientChecking.agree(result.gradient.storage[i], numeric, absolute: 1e-3, relative: 1e-2),
        "logit \(i): \(result.gradient.storage[i]) vs \(numeric)")
    }
  }

  func testCrossEntropyRejectsBadLabelsAndWeights() {
    let logits = Tensor(shape: [2, 2])
    for (labels, classWeights) in [([0, 2], nil), ([0], nil), ([0, 1], [Float(1)])] as [([Int], [Float]?)] {
      XCTAssertThrowsError(
        try softmaxCrossEntropy(logits: logits, labels: labels, classWeights: classWeights)
      ) { XCTAssertEqual(($0 as? NetworkError)?.code, .invalidInput) }
    }
  }

  // MARK: Adam and L2

  func testAdamMinimisesAQuadratic() {
    // f(w) = Σ (w_i − t_i)², gradient 2(w − t).
    let target: [Float] = [3, -2, 0.5]
    let w = Parameter(name: "w", shape: [3], value: [0, 0, 0])
    let adam = Adam(parameters: [w], learningRate: 0.05)
    for _ in 0..<2000 {
      for i in 0..<3 { w.gradient[i] = 2 * (w.value[i] - target[i]) }
      adam.step()
    }
    XCTAssertTrue(allClose(w.value, target, absolute: 1e-3), "\(w.value)")
    XCTAssertEqual(w.gradient, [0, 0, 0])
    XCTAssertEqual(adam.stepCount, 2000)
  }

  func testAdamFirstStepIsLearningRateTimesSignAndL2IsCoupled() {
    let w = Parameter(name: "w", shape: [2], value: [1, -1], isRegularized: true)
    let b = Parameter(name: "b", shape: [2], value: [1, -1])
    let adam = Adam(parameters: [w, b], learningRate: 0.1, l2: 0.5)
    // Zero data gradient: only the coupled L2 term 2λw moves the weight, never the bias.
    adam.step()
    XCTAssertTrue(allClose(w.value, [0.9, -0.9], absolute: 1e-5), "\(w.value)")
    XCTAssertEqual(b.value, [1, -1])
    XCTAssertEqual(l2Penalty([w, b], lambda: 0.5), 0.5 * (0.81 + 0.81), accuracy: 1e-5)
  }

  // MARK: Networks

  /// The reference MLP shape on `features` inputs: Dense → BN → ReLU → Dropout → Dense → BN → ReLU →
  /// Dropout → Dense(2).
  private func makeMLP(features: Int, seed: UInt64, hidden: (Int, Int) = (32, 16)) -> Sequential {
    var random = NetworkRandom(seed: seed)
    return Sequential([
      Dense(name: "fc1", inputFeatures: features, outputFeatures: hidden.0, random: &random),
      BatchNorm(name: "bn1", features: hidden.0),
      ReLU(),
      Dropout(rate: 0.5, random: &random),
      Dense(name: "fc2", inputFeatures: hidden.0, outputFeatures: hidden.1, random: &random),
      BatchNorm(name: "bn2", features: hidden.1),
      ReLU(),
      Dropout(rate: 0.5, random: &random),
      Dense(name: "out", inputFeatures: hidden.1, outputFeatures: 2, random: &random),
    ])
  }

  /// Two Gaussian blobs in `dimensions` dimensions, centres ±1.5 on every axis, unit deviation.
  private func blobs(count: Int, dimensions: Int, seed: UInt64) -> (Tensor, [Int]) {
    var random = NetworkRandom(seed: seed)
    var values: [Float] = []
    var labels: [Int] = []
    for i in 0..<count {
      let label = i % 2
      labels.append(label)
      for _ in 0..<dimensions { values.append((label == 0 ? -1.5 : 1.5) + random.normal()) }
    }
    return (Tensor(shape: [count, dimensions], storage: values), labels)
  }

  func testMLPWithBatchNormAndDropoutSeparatesTwoBlobs() throws {
    let (inputs, labels) = blobs(count: 400, dimensions: 3, seed: 1)
    let (validation, validationLabels) = blobs(count: 200, dimensions: 3, seed: 2)
    let network = makeMLP(features: 3, seed: 7)
    let adam = Adam(parameters: network.parameters, learningRate: 0.01, l2: 1e-4)
    var random = NetworkRandom(seed: 3)
    let history = try Trainer.fit(
      network: network, optimizer: adam, inputs: inputs, labels: labels,
      validation: (validation, validationLabels),
      configuration: TrainingConfiguration(epochs: 40, batchSize: 32, patience: 5),
      random: &random)
    let (_, accuracy) = try Trainer.evaluate(
      network: network, inputs: validation, labels: validationLabels, batchSize: 64)
    XCTAssertGreaterThan(accuracy, 0.95, "history: \(history.map(\.validationLoss))")
  }

  func testMLPLearnsXOR() throws {
    let inputs = Tensor(shape: [4, 2], storage: [0, 0, 0, 1, 1, 0, 1, 1])
    let labels = [0, 1, 1, 0]
    var random = NetworkRandom(seed: 5)
    let network = Sequential([
      Dense(name: "fc1", inputFeatures: 2, outputFeatures: 8, activation: .relu, random: &random),
      Dense(name: "out", inputFeatures: 8, outputFeatures: 2, random: &random),
    ])
    let adam = Adam(parameters: network.parameters, learningRate: 0.05)
    _ = try Trainer.fit(
      network: network, optimizer: adam, inputs: inputs, labels: labels,
      configuration: TrainingConfiguration(epochs: 500, batchSize: 4), random: &random)
    let result = try Trainer.evaluate(network: network, inputs: inputs, labels: labels, batchSize: 4)
    XCTAssertEqual(result.accuracy, 1)
    XCTAssertLessThan(result.loss, 0.1)
  }

  /// The reference CNN on a small scale: Conv(k=3, ReLU) → Conv(k=3, ReLU) → Flatten →
  /// Dense(ReLU) → Dense(C).
  private func makeCNN(length: Int, channels: Int, classes: Int, seed: UInt64) -> Sequential {
    var random = NetworkRandom(seed: seed)
    return Sequential([
      Conv1D(
        name: "conv1", inputChannels: channels, outputChannels: 6, kernelSize: 3, activation: .relu,
        random: &random),
      Conv1D(
        name: "conv2", inputChannels: 6, outputChannels: 8, kernelSize: 3, activation: .relu,
        random: &random),
      Flatten(),
      Dense(
        name: "dense", inputFeatures: (length - 4) * 8, outputFeatures: 12, activation: .relu,
        random: &random),
      Dense(name: "logits", inputFeatures: 12, outputFeatures: classes, random: &random),
    ])
  }

  func testCNNGradientsEndToEnd() {
    var rng = SeededGenerator(seed: 71)
    let network = makeCNN(length: 7, channels: 3, classes: 3, seed: 8)
    for parameter in network.parameters where parameter.name.hasSuffix("bias") {
      for i in 0..<parameter.count { parameter.value[i] = rng.uniform(0...0.3) }
    }
    GradientChecking.check(
      parameters: network.parameters, forward: { network.forward($0, training: true) },
      backward: { network.backward($0) }, input: GradientChecking.randomTensor([2, 7, 3], &rng),
      epsilon: 5e-4, absolute: 5e-3, relative: 2e-2, rng: &rng)
  }

  /// A sequence task: class = which third of the sequence holds a bump in channel 0.
  private func sequences(count: Int, seed: UInt64) -> (Tensor, [Int]) {
    var random = NetworkRandom(seed: seed)
    var values: [Float] = []
    var labels: [Int] = []
    for i in 0..<count {
      let label = i % 3
      labels.append(label)
      for t in 0..<9 {
        for c in 0..<2 {
          let bump: Float = (c == 0 && t / 3 == label) ? 2 : 0
          values.append(bump + 0.3 * random.normal())
        }
      }
    }
    return (Tensor(shape: [count, 9, 2], storage: values), labels)
  }

  func testCNNTrainingIsDeterministicForASeed() throws {
    func run() throws -> ([NamedTensor], [EpochRecord]) {
      let (inputs, labels) = sequences(count: 60, seed: 4)
      let network = makeCNN(length: 9, channels: 2, classes: 3, seed: 21)
      let adam = Adam(parameters: network.parameters, learningRate: 0.01, l2: 1e-4)
      var random = NetworkRandom(seed: 22)
      let history = try Trainer.fit(
        network: network, optimizer: adam, inputs: inputs, labels: labels,
        configuration: TrainingConfiguration(epochs: 15, batchSize: 16), random: &random)
      return (network.exportTensors(), history)
    }
    let (first, firstHistory) = try run()
    let (second, secondHistory) = try run()
    XCTAssertEqual(first, second)
    XCTAssertEqual(firstHistory, secondHistory)
    let losses = firstHistory.map(\.trainingLoss)
    XCTAssertLessThan(losses.last ?? .infinity, (losses.first ?? 0) * 0.5, "\(losses)")
  }

  func testMLPTrainingWithDropoutIsDeterministicForASeed() throws {
    func run() throws -> [NamedTensor] {
      let (inputs, labels) = blobs(count: 100, dimensions: 3, seed: 1)
      let network = makeMLP(features: 3, seed: 9)
      let adam = Adam(parameters: network.parameters, learningRate: 0.01, l2: 1e-3)
      var random = NetworkRandom(seed: 10)
      _ = try Trainer.fit(
        network: network, optimizer: adam, inputs: inputs, labels: labels,
        configuration: TrainingConfiguration(epochs: 5, batchSize: 10), random: &random)
      return network.exportTensors()
    }
    XCTAssertEqual(try run(), try run())
  }

  // MARK: Saving, loading, early stopping

  func testExportImportRoundTripAndErrors() throws {
    let source = makeMLP(features: 3, seed: 1)
    let target = makeMLP(features: 3, seed: 2)
    let tensors = source.exportTensors()
    XCTAssertEqual(
      tensors.map(\.name),
      [
        "fc1.weight", "fc1.bias", "bn1.gamma", "bn1.beta", "fc2.weight", "fc2.bias", "bn2.gamma",
        "bn2.beta", "out.weight", "out.bias", "bn1.running_mean", "bn1.running_variance",
        "bn2.running_mean", "bn2.running_variance",
      ])
    XCTAssertNotEqual(target.exportTensors(), tensors)
    try target.importTensors(tensors)
    XCTAssertEqual(target.exportTensors(), tensors)
    let byName = source.exportTensorsByName()
    XCTAssertEqual(byName.count, tensors.count)
    XCTAssertEqual(byName["bn2.running_variance"]?.shape, [16])
    try target.importTensors(byName)
    XCTAssertEqual(target.exportTensors(), tensors)

    var missing = tensors
    missing.removeFirst()
    XCTAssertThrowsError(try target.importTensors(missing)) {
      XCTAssertEqual(($0 as? NetworkError)?.code, .missingTensor)
    }
    var wrongShape = tensors
    wrongShape[0] = NamedTensor(name: "fc1.weight", shape: [3], values: [1, 2, 3])
    XCTAssertThrowsError(try target.importTensors(wrongShape)) {
      XCTAssertEqual(($0 as? NetworkError)?.code, .shapeMismatch)
    }
    XCTAssertThrowsError(try target.importTensors(tensors + [tensors[0]])) {
      XCTAssertEqual(($0 as? NetworkError)?.code, .duplicateTensor)
    }
    // A failed import leaves the network unchanged.
    XCTAssertEqual(target.exportTensors(), tensors)
  }

  func testSampleWeightsSetTheOddsOfContradictoryLabels() throws {
    // One input, labelled 0 once and 1 once: the weighted loss is minimised where the softmax
    // probability of class 1 is w₁ / (w₀ + w₁), so the trained bias pair says 3:1 either way round.
    let inputs = Tensor(shape: [2, 1], storage: [1, 1])
    let labels = [0, 1]
    for (weights, expected) in [([Float(1), 3], Float(0.75)), ([3, 1], 0.25), ([1, 1], 0.5)] {
      var random = NetworkRandom(seed: 4)
      let network = Sequential([Dense(name: "fc", inputFeatures: 1, outputFeatures: 2, random: &random)])
      let adam = Adam(parameters: network.parameters, learningRate: 0.05)
      _ = try Trainer.fit(
        network: network, optimizer: adam, inputs: inputs, labels: labels,
        configuration: TrainingConfiguration(epochs: 2000, batchSize: 2, sampleWeights: weights),
        random: &random)
      let logits = Trainer.predict(
        network: network, inputs: Tensor(shape: [1, 1], storage: [1]), batchSize: 1)
      let probability = 1 / (1 + exp(logits.storage[0] - logits.storage[1]))
      XCTAssertEqual(probability, expected, accuracy: 0.01, "weights \(weights)")
    }
  }

  func testSampleWeightsOfTheWrongCountOrSignAreRefused() {
    let inputs = Tensor(shape: [2, 1], storage: [0, 1])
    for weights in [[Float(1)], [1, -1], [1, .nan]] {
      var random = NetworkRandom(seed: 4)
      let network = Sequential([Dense(name: "fc", inputFeatures: 1, outputFeatures: 2, random: &random)])
      XCTAssertThrowsError(
        try Trainer.fit(
          network: network, optimizer: Adam(parameters: network.parameters, learningRate: 0.1),
          inputs: inputs,
          labels: [0, 1],
          configuration: TrainingConfiguration(epochs: 1, batchSize: 2, sampleWeights: weights),
          random: &random)
      ) { XCTAssertEqual(($0 as? NetworkError)?.code, .invalidInput, "\(weights)") }
    }
  }

  func testEarlyStoppingRestoresTheBestWeights() throws {
    var random = NetworkRandom(seed: 1)
    let dense = Dense(name: "fc", inputFeatures: 1, outputFeatures: 1, random: &random)
    let network = Sequential([dense])
    var stopping = EarlyStopping(patience: 2)
    var stopped: Int?
    for (epoch, loss) in [Float(3), 2, 1, 1.5, 1.2, 0.5].enumerated() {
      dense.weight.value = [Float(epoch)]
      if stopping.record(loss, network: network) {
        stopped = epoch
        break
      }
    }
    XCTAssertEqual(stopped, 4)
    XCTAssertEqual(stopping.bestEpoch, 2)
    try stopping.restoreBest(into: network)
    XCTAssertEqual(dense.weight.value, [2])
  }

  func testPredictionsAreIndependentOfBatchSizeAndRepeatable() {
    var rng = SeededGenerator(seed: 81)
    let network = makeCNN(length: 9, channels: 2, classes: 3, seed: 3)
    let inputs = GradientChecking.randomTensor([7, 9, 2], &rng)
    let whole = Trainer.predict(network: network, inputs: inputs, batchSize: 7)
    let pieces = Trainer.predict(network: network, inputs: inputs, batchSize: 3)
    XCTAssertTrue(allClose(whole.storage, pieces.storage, absolute: 1e-5))
    XCTAssertEqual(Trainer.predict(network: network, inputs: inputs, batchSize: 7), whole)
    let outputs = network.forwardCollectingOutputs(inputs, training: false)
    XCTAssertEqual(outputs.map(\.shape), [[7, 7, 6], [7, 5, 8], [7, 40], [7, 12], [7, 3]])
  }
}
