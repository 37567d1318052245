import LinearAlgebra
import NeuralNetwork

/// The benign feature network of CurvaLID (DESIGN §1) with its input standardization:
/// `[L, d]` standardized token rows → `Conv1D(f1, k, ReLU)` → `Conv1D(f2, k, ReLU)` → `Flatten` →
/// `Dense(h, ReLU)` → `Dense(C)` (topic logits).
///
/// Immutable after training; `makeNetwork()` builds a fresh `Sequential` (layers are not
/// `Sendable`, so each thread uses its own).
public struct FeatureNetworkModel: Sendable {
  /// The architecture.
  public let settings: DetectorConfiguration.FeatureNetwork
  /// Encoder width `d`.
  public let hiddenSize: Int
  /// Topic classes `C`.
  public let classes: Int
  /// Per-channel mean of training token rows, `[d]`.
  public let inputMean: [Float]
  /// Per-channel standard deviation of training token rows (floored at 1e-6), `[d]`.
  public let inputStandardDeviation: [Float]
  /// The network's tensors (names `feature_net.*`).
  public let tensors: [NamedTensor]

  /// Layer indices of the outputs the features read.
  static let conv1Index = 0
  static let conv2Index = 1
  static let denseIndex = 3

  /// Wraps trained parts.
  public init(
    settings: DetectorConfiguration.FeatureNetwork, hiddenSize: Int, classes: Int, inputMean: [Float],
    inputStandardDeviation: [Float], tensors: [NamedTensor]
  ) {
    self.settings = settings
    self.hiddenSize = hiddenSize
    self.classes = classes
    self.inputMean = inputMean
    self.inputStandardDeviation = inputStandardDeviation
    self.tensors = tensors
  }

  /// Positions of the first convolution's output: `L − k + 1`.
  public var conv1Length: Int { settings.length - settings.kernelSize + 1 }
  /// Positions of the second convolution's output: `L − 2k + 2`.
  public var conv2Length: Int { settings.length - 2 * settings.kernelSize + 2 }

  /// A freshly initialised network of this architecture.
  static func architecture(
    _ settings: DetectorConfiguration.FeatureNetwork, hiddenSize: Int, classes: Int,
    random: inout NetworkRandom
  ) -> Sequential {
    let conv2Length = settings.length - 2 * settings.kernelSize + 2
    return Sequential([
      Conv1D(
        name: "feature_net.conv1", inputChannels: hiddenSize, outputChannels: settings.filters1,
        kernelSize: settings.kernelSize, activation: .relu, random: &random),
      Conv1D(
        name: "feature_net.conv2", inputChannels: settings.filters1, outputChannels: settings.filters2,
        kernelSize: settings.kernelSize, activation: .relu, random: &random),
      Flatten(),
      Dense(
        name: "feature_net.dense", inputFeatures: conv2Length * settings.filters2,
        outputFeatures: settings.dense, activation: .relu, random: &random),
      Dense(
        name: "feature_net.logits", inputFeatures: settings.dense, outputFeatures: classes, random: &random),
    ])
  }

  /// A network holding the trained weights.
  ///
  /// - Throws: `DetectionError(.invalidBundle)` when the stored tensors do not fit the architecture.
  func makeNetwork() throws(DetectionError) -> Sequential {
    var random = NetworkRandom(seed: 0)
    let network = Self.architecture(settings, hiddenSize: hiddenSize, classes: classes, random: &random)
    do {
      try network.importTensors(tensors)
    } catch {
      throw DetectionError(.invalidBundle, "feature network: \(error.message)")
    }
    return network
  }

  /// Standardizes and pads/truncates token rows to the network input.
  ///
  /// - Parameters:
  ///   - embeddings: Prompts with `[tokens, d]` rows.
  ///   - mean: `[d]` channel means.
  ///   - deviation: `[d]` channel standard deviations.
  ///   - length: `L`.
  /// - Returns: `[batch, L, d]` (rows past a prompt's end are zero) and each prompt's real rows
  ///   `min(tokens, L)`.
  static func input(
    _ embeddings: [PromptEmbedding], mean: [Float], deviation: [Float], length: Int
  ) -> (tensor: Tensor, validLengths: [Int]) {
    let d = mean.count
    var storage = [Float](repeating: 0, count: embeddings.count * length * d)
    var lengths: [Int] = []
    lengths.reserveCapacity(embeddings.count)
    let inverse = deviation.map { 1 / $0 }
    storage.withUnsafeMutableBufferPointer { out in
      for (item, embedding) in embeddings.enumerated() {
        precondition(embedding.hidden.columns == d, "embedding width \(embedding.hidden.columns) ≠ \(d)")
        let rows = min(embedding.hidden.rows, length)
        lengths.append(rows)
        embedding.hidden.storage.withUnsafeBufferPointer { source in
          for row in 0..<rows {
            let target = (item * length + row) * d
            let from = row * d
            for c in 0..<d { out[target + c] = (source[from + c] - mean[c]) * inverse[c] }
          }
        }
      }
    }
    return (Tensor(shape: [embeddings.count, length, d], storage: storage), lengths)
  }

  /// Runs the network in inference mode and keeps the outputs the feature blocks read.
  func outputs(_ embeddings: [PromptEmbedding], network: Sequential) -> NetworkOutputs {
    let (tensor, lengths) = Self.input(
      embeddings, mean: inputMean, deviation: inputStandardDeviation, length: settings.length)
    let all = network.forwardCollectingOutputs(tensor, training: false)
    let k = settings.kernelSize
    let span = settings.curvatureSpan == "all"
    return NetworkOutputs(
      conv1: all[Self.conv1Index], conv2: all[Self.conv2Index], dense: all[Self.denseIndex].matrix,
      conv1Lengths: lengths.map { span ? conv1Length : max(0, $0 - (k - 1)) },
      conv2Lengths: lengths.map { span ? conv2Length : max(0, $0 - 2 * (k - 1)) },
      kernelSize: k)
  }
}

/// The feature network's activations for a batch of prompts.
public struct NetworkOutputs: Sendable {
  /// First convolution, `[batch, L − k + 1, f1]`.
  public let conv1: Tensor
  /// Second convolution, `[batch, L − 2k + 2, f2]`.
  public let conv2: Tensor
  /// Dense activations, `[batch, h]`.
  public let dense: Matrix
  /// Per prompt, the conv1 positions that count for curvature.
  public let conv1Lengths: [Int]
  /// Per prompt, the conv2 positions that count for curvature.
  public let conv2Lengths: [Int]
  /// The kernel width (maps conv positions back to tokens).
  public let kernelSize: Int

  /// Outputs as the feature network computes them (also for tests of the blocks that read them).
  package init(
    conv1: Tensor, conv2: Tensor, dense: Matrix, conv1Lengths: [Int], conv2Lengths: [Int], kernelSize: Int
  ) {
    self.conv1 = conv1
    self.conv2 = conv2
    self.dense = dense
    self.conv1Lengths = conv1Lengths
    self.conv2Lengths = conv2Lengths
    self.kernelSize = kernelSize
  }
}

/// What feature blocks read for a batch of prompts.
public struct FeatureBatch: Sendable {
  /// The prompts' token embeddings.
  public let embeddings: [PromptEmbedding]
  /// The feature network's outputs, when the model has a feature network.
  public let network: NetworkOutputs?

  /// Number of prompts.
  public var count: Int { embeddings.count }

  /// A batch of prompts with the feature network's outputs, if any.
  package init(embeddings: [PromptEmbedding], network: NetworkOutputs?) {
    self.embeddings = embeddings
    self.network = network
  }
}
