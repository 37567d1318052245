import Embeddings
import Foundation
import LinearAlgebra
import NeuralNetwork

/// How the encoder's top layers are fine-tuned on the detection objective.
public struct FineTuningSettings: Sendable, Equatable {
  /// Top layers trained (the rest stay frozen).
  public var layers: Int
  /// Passes over the training examples.
  public var epochs: Int
  /// Rows per training crop: a longer prompt contributes a random window of this many consecutive
  /// rows of its frozen hidden states, so prompt length is no shortcut. Scoring reads every row.
  public var crop: Int
  /// Examples per optimizer step.
  public var batchSize: Int
  /// Adam step size of the transformer layers.
  public var learningRate: Float
  /// Adam step size of the linear head.
  public var headLearningRate: Float
  /// Seed of the head initialization, crop positions and shuffling.
  public var seed: UInt64

  /// Creates settings.
  public init(
    layers: Int, epochs: Int, crop: Int, batchSize: Int, learningRate: Float, headLearningRate: Float,
    seed: UInt64
  ) {
    self.layers = layers
    self.epochs = epochs
    self.crop = crop
    self.batchSize = batchSize
    self.learningRate = learningRate
    self.headLearningRate = headLearningRate
    self.seed = seed
  }
}

/// Fine-tunes the top `layers` transformer layers of a BERT encoder with a mean-pooled linear head
/// and a weighted binary cross-entropy, on hidden states from the frozen layers below.
///
/// One step: crop each example's frozen states `[T_i, hidden]` to at most `crop` rows, pack the
/// batch `[Σ T_i, hidden]`, run the trainable layers, mean-pool each example to `m_i [hidden]`,
/// `z_i = w·m_i + b`, loss `Σ_i weight_i · BCE(z_i, y_i) / batch`, back-propagate, one Adam step
/// for the layers and one for the head. Deterministic for a seed and a BLAS thread count.
public enum EncoderFineTuning {
  /// The outcome: the tuned layers (bottom first, to replace the encoder's top layers) and the
  /// mean training loss of each epoch.
  public struct Result: Sendable {
    /// The fine-tuned top layers, bottom first.
    public let layers: [BertLayerWeights]
    /// Mean weighted loss per epoch.
    public let epochLosses: [Double]
  }

  /// Trains the encoder's top layers.
  ///
  /// - Parameters:
  ///   - encoder: The frozen encoder whose top `settings.layers` layers are the starting point.
  ///   - settings: What to train.
  ///   - count: Number of training examples.
  ///   - isAttack: Label of each example, `[count]`.
  ///   - weights: Loss weight of each example, `[count]` (e.g. balancing classes and families).
  ///   - states: Returns the frozen hidden states below the tuned layers for the given examples,
  ///     one `[T_i, hidden]` matrix each (`BertEncoder.hiddenStates(batch:layerCount:)`).
  ///   - epochDone: Called after each epoch with its number (from 1) and mean loss.
  /// - Returns: The tuned layers and the losses.
  /// - Throws: `EncoderTuningError(.invalidConfiguration / .invalidInput / .diverged)`, or what
  ///   `states` throws, wrapped as `.invalidInput`.
  public static func train(
    encoder: BertEncoder, settings: FineTuningSettings, count: Int, isAttack: [Bool], weights: [Float],
    states: ([Int]) throws -> [Matrix], epochDone: ((Int, Double) -> Void)? = nil
  ) throws(EncoderTuningError) -> Result {
    let c = encoder.configuration
    guard settings.layers >= 1, settings.layers <= encoder.layers.count else {
      throw EncoderTuningError(
        .invalidConfiguration, "fine-tuning needs 1 to \(encoder.layers.count) layers, not \(settings.layers)"
      )
    }
    guard settings.epochs >= 1, settings.crop >= 1, settings.batchSize >= 1, settings.learningRate > 0,
      settings.headLearningRate > 0
    else {
      throw EncoderTuningError(.invalidConfiguration, "fine-tuning sizes and learning rates must be positive")
    }
    guard count > 0, isAttack.count == count, weights.count == count else {
      throw EncoderTuningError(
        .invalidInput, "fine-tuning needs examples with one label and one weight each")
    }
    guard isAttack.contains(true), isAttack.contains(false) else {
      throw EncoderTuningError(.invalidInput, "fine-tuning needs benign and attack examples")
    }
    let h = c.hiddenSize
    let first = encoder.layers.count - settings.layers
    let layers = (first..<encoder.layers.count).map { index in
      TrainableBertLayer(weights: encoder.layers[index], configuration: c, name: "layer\(index)")
    }
    var random = NetworkRandom(seed: settings.seed)
    let limit = 1 / Float(h).squareRoot()
    let headWeight = Parameter(
      name: "head.weight", shape: [h], value: (0..<h).map { _ in random.uniform(-limit, limit) })
    let headBias = Parameter(name: "head.bias", shape: [1], value: [0])
    let layerOptimizer = Adam(parameters: layers.flatMap(\.parameters), learningRate: settings.learningRate)
    let headOptimizer = Adam(parameters: [headWeight, headBias], learningRate: settings.headLearningRate)

    var order = Array(0..<count)
    var losses: [Double] = []
    for epoch in 1...settings.epochs {
      shuffle(&order, random: &random)
      var total: Double = 0
      var start = 0
      while start < count {
        let batch = Array(order[start..<min(start + settings.batchSize, count)])
        start += batch.count
        let loaded: [Matrix]
        do {
          loaded = try states(batch)
        } catch {
          throw EncoderTuningError(.invalidInput, "cannot load hidden states: \(error)")
        }
        guard loaded.count == batch.count, loaded.allSatisfy({ $0.columns == h && $0.rows >= 1 }) else {
          throw EncoderTuningError(.invalidInput, "hidden states must be [T ≥ 1, \(h)] per example")
        }
        var packed: [Float] = []
        var lengths: [Int] = []
        for state in loaded {
          let length = min(state.rows, settings.crop)
          let offset = state.rows > length ? Int(random.next() % UInt64(state.rows - length + 1)) : 0
          packed += state.storage[(offset * h)..<((offset + length) * h)]
          lengths.append(length)
        }
        var x = packed
        for layer in layers { x = layer.forward(x, lengths: lengths, training: true) }
        // Head: z_i = w · mean_i + b; ∂loss/∂z_i = weight_i · (σ(z_i) − y_i) / batch.
        var gradient = [Float](repeating: 0, count: x.count)
        var row = 0
        var batchLoss: Double = 0
        let scale = 1 / Float(batch.count)
        for (position, example) in batch.enumerated() {
          let length = lengths[position]
          var mean = [Float](repeating: 0, count: h)
          for r in row..<(row + length) {
            for j in 0..<h { mean[j] += x[r * h + j] }
          }
          for j in 0..<h { mean[j] /= Float(length) }
          var z = headBias.value[0]
          for j in 0..<h { z += headWeight.value[j] * mean[j] }
          let y: Float = isAttack[example] ? 1 : 0
          let p = 1 / (1 + FastMath.exp(-z))
          // log(1 + e^{−|z|}) + max(z, 0) − y·z: the stable binary cross-entropy with logits.
          let loss = Double(log1p(FastMath.exp(-abs(z))) + max(z, 0) - y * z)
          guard loss.isFinite else {
            throw EncoderTuningError(.diverged, "fine-tuning loss is not finite at epoch \(epoch)")
          }
          batchLoss += Double(weights[example]) * loss
          let dz = weights[example] * (p - y) * scale
          headBias.gradient[0] += dz
          for j in 0..<h { headWeight.gradient[j] += dz * mean[j] }
          let spread = dz / Float(length)
          for r in row..<(row + length) {
            for j in 0..<h { gradient[r * h + j] = spread * headWeight.value[j] }
          }
          row += length
        }
        total += batchLoss
        for (index, layer) in layers.enumerated().reversed() {
          if let next = layer.backward(gradient, inputGradient: index > 0) { gradient = next }
        }
        layerOptimizer.step()
        headOptimizer.step()
      }
      let mean = total / Double(count)
      losses.append(mean)
      epochDone?(epoch, mean)
    }
    return Result(layers: layers.map(\.weights), epochLosses: losses)
  }

  /// Fisher–Yates with the network generator.
  static func shuffle(_ values: inout [Int], random: inout NetworkRandom) {
    guard values.count > 1 else { return }
    for i in stride(from: values.count - 1, to: 0, by: -1) {
      let j = Int(random.next() % UInt64(i + 1))
      values.swapAt(i, j)
    }
  }
}
