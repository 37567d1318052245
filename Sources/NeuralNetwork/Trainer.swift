/// Settings of a minibatch training run (`Trainer.fit`).
public struct TrainingConfiguration: Sendable {
  /// Maximum number of passes over the training set.
  public var epochs: Int
  /// Samples per minibatch (the last one may be smaller).
  public var batchSize: Int
  /// `[classes]` weights of the training loss (Keras `class_weight`), or `nil`.
  public var classWeights: [Float]?
  /// `[samples]` weights of the training loss, one per training sample (multiplied with the
  /// class weight, Keras `sample_weight`), or `nil`. The validation loss stays unweighted.
  public var sampleWeights: [Float]?
  /// Early-stopping patience on the validation loss (needs validation data), or `nil` for none.
  public var patience: Int?
  /// Minimum validation-loss decrease that counts as an improvement.
  public var minimumDelta: Float

  /// Creates a configuration.
  public init(
    epochs: Int, batchSize: Int, classWeights: [Float]? = nil, sampleWeights: [Float]? = nil,
    patience: Int? = nil, minimumDelta: Float = 0
  ) {
    self.epochs = epochs
    self.batchSize = batchSize
    self.classWeights = classWeights
    self.sampleWeights = sampleWeights
    self.patience = patience
    self.minimumDelta = minimumDelta
  }
}

/// What one epoch measured.
public struct EpochRecord: Sendable, Equatable {
  /// 0-based epoch.
  public var epoch: Int
  /// Mean weighted training loss over the epoch's minibatches plus the L2 penalty.
  public var trainingLoss: Float
  /// Unweighted validation loss plus the L2 penalty, if validation data was given.
  public var validationLoss: Float?
  /// Validation accuracy (arg-max), if validation data was given.
  public var validationAccuracy: Float?
}

/// A minibatch training loop for classification networks that end in logits `[batch, classes]`.
public enum Trainer {
  /// Trains `network` with softmax cross-entropy, seeded shuffling and optional early stopping
  /// (restoring the best weights when it stops or the epochs run out).
  /// - Parameters:
  ///   - network: Maps `inputs` items to logits `[batch, classes]`.
  ///   - optimizer: An `Adam` over `network.parameters` (its `l2` is reported in the losses).
  ///   - inputs: `[samples, …]` training inputs.
  ///   - labels: `[samples]` class indices.
  ///   - validation: Held-out inputs and labels for the validation loss and early stopping.
  ///   - configuration: Epochs, batch size, class and sample weights, patience.
  ///   - random: Generator for the per-epoch shuffles.
  /// - Returns: One record per epoch run.
  /// - Throws: `NetworkError.invalidInput` for inconsistent data or settings.
  public static func fit(
    network: Sequential, optimizer: Adam, inputs: Tensor, labels: [Int],
    validation: (inputs: Tensor, labels: [Int])? = nil, configuration: TrainingConfiguration,
    random: inout NetworkRandom
  ) throws(NetworkError) -> [EpochRecord] {
    let samples = inputs.batch
    guard labels.count == samples else {
      throw NetworkError(.invalidInput, "\(labels.count) labels for \(samples) samples")
    }
    guard samples > 0, configuration.batchSize > 0, configuration.epochs >= 0 else {
      throw NetworkError(.invalidInput, "need samples, a positive batch size and epochs ≥ 0")
    }
    if configuration.patience != nil, validation == nil {
      throw NetworkError(.invalidInput, "early stopping needs validation data")
    }
    if let weights = configuration.sampleWeights {
      guard weights.count == samples, weights.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
        throw NetworkError(
          .invalidInput, "\(weights.count) sample weights for \(samples) samples (each finite and ≥ 0)")
      }
    }
    var stopping = configuration.patience.map {
      EarlyStopping(patience: $0, minimumDelta: configuration.minimumDelta)
    }
    var order = Array(0..<samples)
    var history: [EpochRecord] = []
    for epoch in 0..<configuration.epochs {
      shuffle(&order, random: &random)
      var lossSum: Double = 0
      var batches = 0
      var start = 0
      while start < samples {
        let indices = order[start..<min(start + configuration.batchSize, samples)]
        start += configuration.batchSize
        let logits = network.forward(inputs.items(indices), training: true)
        let result = try softmaxCrossEntropy(
          logits: logits, labels: indices.map { labels[$0] }, classWeights: configuration.classWeights,
          sampleWeights: configuration.sampleWeights.map { weights in indices.map { weights[$0] } })
        network.backward(result.gradient)
        optimizer.step()
        lossSum += Double(result.loss)
        batches += 1
      }
      let penalty = l2Penalty(network.parameters, lambda: optimizer.l2)
      var record = EpochRecord(
        epoch: epoch, trainingLoss: Float(lossSum / Double(batches)) + penalty)
      if let validation {
        let evaluation = try evaluate(
          network: network, inputs: validation.inputs, labels: validation.labels,
          batchSize: configuration.batchSize)
        record.validationLoss = evaluation.loss + penalty
        record.validationAccuracy = evaluation.accuracy
      }
      history.append(record)
      if var current = stopping, let value = record.validationLoss {
        let stop = current.record(value, network: network)
        stopping = current
        if stop { break }
      }
    }
    try stopping?.restoreBest(into: network)
    return history
  }

  /// Runs the network in inference mode over `inputs`, `batchSize` items at a time.
  /// - Parameters:
  ///   - network: The network.
  ///   - inputs: `[samples, …]`.
  ///   - batchSize: Items per forward pass (≥ 1).
  /// - Returns: The outputs of all items, stacked: `[samples, outputs…]`.
  public static func predict(network: Sequential, inputs: Tensor, batchSize: Int) -> Tensor {
    precondition(batchSize > 0, "batch size must be positive")
    var values: [Float] = []
    var itemShape: [Int] = []
    var start = 0
    while start < inputs.batch {
      let output = network.forward(
        inputs.items(start..<min(start + batchSize, inputs.batch)), training: false)
      itemShape = Array(output.shape.dropFirst())
      values.append(contentsOf: output.storage)
      start += batchSize
    }
    if inputs.batch == 0 { return Tensor(shape: [0, 0]) }
    return Tensor(shape: [inputs.batch] + itemShape, storage: values)
  }

  /// Mean unweighted cross-entropy and arg-max accuracy of a classifier in inference mode.
  /// - Parameters:
  ///   - network: Maps inputs to logits `[batch, classes]`.
  ///   - inputs: `[samples, …]`.
  ///   - labels: `[samples]`.
  ///   - batchSize: Items per forward pass.
  /// - Returns: Loss and accuracy.
  /// - Throws: `NetworkError.invalidInput` for bad labels.
  public static func evaluate(
    network: Sequential, inputs: Tensor, labels: [Int], batchSize: Int
  ) throws(NetworkError) -> (loss: Float, accuracy: Float) {
    let logits = predict(network: network, inputs: inputs, batchSize: max(1, batchSize))
    let result = try softmaxCrossEntropy(logits: logits, labels: labels)
    guard !labels.isEmpty else { return (result.loss, 0) }
    let classes = logits.shape[1]
    var correct = 0
    for (i, label) in labels.enumerated() {
      let row = logits.storage[(i * classes)..<((i + 1) * classes)]
      if let best = row.indices.max(by: { row[$0] < row[$1] }), best - i * classes == label {
        correct += 1
      }
    }
    return (result.loss, Float(correct) / Float(labels.count))
  }

  /// Fisher–Yates shuffle driven by `random`, stable across Swift versions (unlike
  /// `shuffle(using:)`, whose algorithm is not specified).
  /// - Parameters:
  ///   - values: The array to permute in place.
  ///   - random: The generator.
  public static func shuffle<T>(_ values: inout [T], random: inout NetworkRandom) {
    guard values.count > 1 else { return }
    for i in stride(from: values.count - 1, to: 0, by: -1) {
      let j = Int(random.next() % UInt64(i + 1))
      values.swapAt(i, j)
    }
  }
}
