import Embeddings
import LinearAlgebra
import NeuralNetwork

/// One BERT transformer layer (post-norm, exactly as `BertEncoder` runs it) with trainable weights:
/// a forward pass that keeps the activations backpropagation needs, and a backward pass.
///
/// For packed input `x [rows, hidden]` (several sequences one after the other):
/// ```
/// qkv = x·W_qkv + b_qkv                                   [rows, 3·hidden]
/// C   = softmax(Q_h·K_hᵀ/√d_h)·V_h per sequence and head  [rows, hidden]
/// a   = LN₁(x + C·W_o + b_o)                              [rows, hidden]
/// u   = a·W_i + b_i                                       [rows, intermediate]
/// y   = LN₂(a + GELU(u)·W_out + b_out)                    [rows, hidden]
/// ```
/// Every linear map runs over all packed rows at once; attention runs per (sequence, head) on the
/// team of `BLAS.threadCount` workers, as in `BertEncoder.attention`.
///
/// Like the layers of `NeuralNetwork`, an instance keeps workspaces and the activations of its last
/// training forward pass, so it is not `Sendable`: use one per thread. Buffer sizes that do not
/// match the documented shapes are programming errors and stop with a precondition failure.
public final class TrainableBertLayer {
  /// The encoder shape the layer belongs to.
  let configuration: BertConfiguration
  /// The 12 tensors as `Parameter`s, in the order and layouts of
  /// `BertLayerWeights.namedTensors(configuration:)`, named `"\(name).\(tensorName)"`.
  ///
  /// The four 2-D weight matrices are regularized; biases and layer-norm tensors are not.
  public let parameters: [Parameter]

  // The parameters by role (the same objects as in `parameters`).
  let qkvWeight: Parameter  // [hidden, 3·hidden], columns Q | K | V
  let qkvBias: Parameter  // [3·hidden]
  let attentionOutputWeight: Parameter  // [hidden, hidden]
  let attentionOutputBias: Parameter  // [hidden]
  let attentionNormGamma: Parameter  // [hidden]
  let attentionNormBeta: Parameter  // [hidden]
  let intermediateWeight: Parameter  // [hidden, intermediate]
  let intermediateBias: Parameter  // [intermediate]
  let outputWeight: Parameter  // [intermediate, hidden]
  let outputBias: Parameter  // [hidden]
  let outputNormGamma: Parameter  // [hidden]
  let outputNormBeta: Parameter  // [hidden]

  /// The activations of the last training forward pass (`nil` before one).
  var cache: Activations?
  /// The buffers of evaluation passes, kept apart so they do not overwrite `cache`.
  var evaluation = Activations()
  /// Backward workspaces, reused between calls.
  var workspace = Workspace()

  /// Creates a trainable layer starting from existing weights.
  /// - Parameters:
  ///   - weights: Initial values, in the layouts `BertLayerWeights` documents (e.g. an encoder's top
  ///     layer); a tensor of the wrong size is a precondition failure.
  ///   - configuration: The encoder shape (hidden size, heads, intermediate size, epsilon).
  ///   - name: Prefix of the parameter names.
  public init(weights: BertLayerWeights, configuration: BertConfiguration, name: String) {
    precondition(
      configuration.headCount > 0 && configuration.hiddenSize % configuration.headCount == 0,
      "hidden size \(configuration.hiddenSize) is not a multiple of \(configuration.headCount) heads")
    self.configuration = configuration
    let parameters = weights.namedTensors(configuration: configuration).map { tensor in
      Parameter(
        name: "\(name).\(tensor.name)", shape: tensor.shape, value: tensor.values,
        isRegularized: tensor.shape.count == 2)
    }
    precondition(parameters.count == 12, "a BERT layer has 12 tensors")
    self.parameters = parameters
    qkvWeight = parameters[0]
    qkvBias = parameters[1]
    attentionOutputWeight = parameters[2]
    attentionOutputBias = parameters[3]
    attentionNormGamma = parameters[4]
    attentionNormBeta = parameters[5]
    intermediateWeight = parameters[6]
    intermediateBias = parameters[7]
    outputWeight = parameters[8]
    outputBias = parameters[9]
    outputNormGamma = parameters[10]
    outputNormBeta = parameters[11]
  }

  /// The current values as layer weights, e.g. for `BertEncoder.replacingTopLayers(with:)`.
  public var weights: BertLayerWeights {
    BertLayerWeights(
      qkvWeight: qkvWeight.value, qkvBias: qkvBias.value, attentionOutputWeight: attentionOutputWeight.value,
      attentionOutputBias: attentionOutputBias.value, attentionNormGamma: attentionNormGamma.value,
      attentionNormBeta: attentionNormBeta.value, intermediateWeight: intermediateWeight.value,
      intermediateBias: intermediateBias.value, outputWeight: outputWeight.value,
      outputBias: outputBias.value,
      outputNormGamma: outputNormGamma.value, outputNormBeta: outputNormBeta.value)
  }

  /// Runs the layer on a packed batch.
  ///
  /// Attention runs within each sequence only, as in `BertEncoder`'s packed batches.
  /// - Parameters:
  ///   - input: `[Σ lengths, hidden]`, the rows of each sequence one after the other.
  ///   - lengths: The sequences' row counts, each ≥ 1 (precondition).
  ///   - training: Whether to keep the activations `backward` needs (replacing those of the
  ///     previous training pass); an evaluation pass leaves them untouched.
  /// - Returns: The layer output, `[Σ lengths, hidden]`.
  /// - Complexity: `2·rows·(4·h² + 2·h·i) + 4·h·Σ tᵢ²` FLOPs for hidden `h`, intermediate `i`.
  public func forward(_ input: [Float], lengths: [Int], training: Bool) -> [Float] {
    let h = configuration.hiddenSize
    precondition(lengths.allSatisfy { $0 >= 1 }, "every sequence needs at least one row")
    let rows = lengths.reduce(0, +)
    precondition(input.count == rows * h, "input has \(input.count) values for [\(rows), \(h)]")
    if rows == 0 {
      if training { cache = Activations() }
      return []
    }
    var state = Activations()
    if training {
      // Reuse the old activations' storage; `cache` lets go so the buffers are uniquely held.
      if let old = cache { state = old }
      cache = nil
    } else {
      swap(&state, &evaluation)
    }
    state.prepare(configuration: configuration, input: input, lengths: lengths)
    var output = [Float](repeating: 0, count: rows * h)
    run(&state, output: &output)
    if training {
      cache = state
    } else {
      swap(&state, &evaluation)
    }
    return output
  }

  /// Differentiates the last training forward pass.
  ///
  /// Adds `∂loss/∂parameter` into each parameter's `gradient` (so gradients accumulate across
  /// calls until cleared). Calling it without a training forward pass, or with a gradient of the
  /// wrong size, is a precondition failure.
  /// - Parameters:
  ///   - gradientOutput: `∂loss/∂output`, `[Σ lengths, hidden]`.
  ///   - inputGradient: Whether to compute `∂loss/∂input`.
  /// - Returns: `∂loss/∂input`, `[Σ lengths, hidden]`, when `inputGradient`; otherwise `nil`.
  public func backward(_ gradientOutput: [Float], inputGradient: Bool) -> [Float]? {
    guard let cache else { preconditionFailure("backward needs a training forward pass first") }
    let h = configuration.hiddenSize
    precondition(
      gradientOutput.count == cache.rows * h,
      "gradient has \(gradientOutput.count) values for [\(cache.rows), \(h)]")
    if cache.rows == 0 { return inputGradient ? [] : nil }
    return differentiate(cache, gradientOutput: gradientOutput, inputGradient: inputGradient)
  }
}

extension TrainableBertLayer {
  /// What one forward pass computes and (for training) `backward` reads.
  struct Activations {
    /// Rows per sequence, and each sequence's first row.
    var lengths: [Int] = []
    var offsets: [Int] = []
    /// Each sequence's first value in `probabilities`.
    var probabilityOffsets: [Int] = []
    var rows = 0
    var longest = 0
    /// The layer input `x`, `[rows, hidden]`.
    var input: [Float] = []
    /// `x·W_qkv + b_qkv`, `[rows, 3·hidden]`.
    var qkv: [Float] = []
    /// Attention probabilities `P`, `[heads, tᵢ, tᵢ]` per sequence, one after the other.
    var probabilities: [Float] = []
    /// Attention context `C`, `[rows, hidden]`.
    var context: [Float] = []
    /// `x̂₁`, the first layer norm's normalised input, `[rows, hidden]`, and its `1/σ` per row.
    var attentionNormalized: [Float] = []
    var attentionInverseDeviation: [Float] = []
    /// `a = LN₁(…)`, `[rows, hidden]`.
    var attentionOutput: [Float] = []
    /// `u = a·W_i + b_i` before the GELU, `[rows, intermediate]`.
    var intermediate: [Float] = []
    /// `x̂₂` and `1/σ` of the second layer norm.
    var outputNormalized: [Float] = []
    var outputInverseDeviation: [Float] = []

    /// Sizes the buffers for a packed batch (reusing their storage when it fits).
    mutating func prepare(configuration c: BertConfiguration, input: [Float], lengths: [Int]) {
      let h = c.hiddenSize
      self.lengths = lengths
      offsets = []
      probabilityOffsets = []
      var total = 0
      var probabilityTotal = 0
      for length in lengths {
        offsets.append(total)
        probabilityOffsets.append(probabilityTotal)
        total += length
        probabilityTotal += c.headCount * length * length
      }
      rows = total
      longest = lengths.max() ?? 0
      self.input = input
      resize(&qkv, to: total * 3 * h)
      resize(&probabilities, to: probabilityTotal)
      resize(&context, to: total * h)
      resize(&attentionNormalized, to: total * h)
      resize(&attentionInverseDeviation, to: total)
      resize(&attentionOutput, to: total * h)
      resize(&intermediate, to: total * c.intermediateSize)
      resize(&outputNormalized, to: total * h)
      resize(&outputInverseDeviation, to: total)
    }
  }

  /// Buffers of the backward pass (and the GELU output of the forward pass).
  struct Workspace {
    /// `[rows, intermediate]` each.
    var wideA: [Float] = []
    var wideB: [Float] = []
    /// `[rows, hidden]` each.
    var gradientPreNorm: [Float] = []
    var gradientHidden: [Float] = []
    var gradientContext: [Float] = []
    /// `[rows, 3·hidden]`.
    var gradientQKV: [Float] = []
    /// Per attention worker: `[maxT, maxT]` scores and a `[head size, maxT]` transposed key block.
    var attention: [Float] = []
  }
}
