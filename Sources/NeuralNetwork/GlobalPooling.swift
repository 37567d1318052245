import LinearAlgebra

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Pools a batch of sequences over positions, counting only each item's valid (unpadded) prefix.
///
/// Input `[batch, length, channels]`; output `[batch, channels]` for `.mean`, `.max` and
/// `.logSumExp`, and `[batch, 2 · channels]` (means, then maxima) for `.meanAndMax`. Item `b` pools positions
/// `0 ..< validLengths[b]`; padding beyond never counts. An item with no valid position gives zeros.
public final class GlobalPooling: Layer {
  /// What the layer computes per channel.
  public enum Mode: Sendable, Equatable {
    /// The mean over valid positions.
    case mean
    /// The maximum over valid positions.
    case max
    /// Means then maxima, concatenated.
    case meanAndMax
    /// `log Σ_t exp(x[t])` over valid positions: a smooth maximum whose gradient spreads over
    /// the positions by their softmax weights (multiple-instance pooling of per-position logits).
    case logSumExp
  }

  /// The pooling mode.
  public let mode: Mode
  /// Valid positions of each item of the next `forward` (`[batch]`), or `nil` for all positions.
  ///
  /// Lengths are in this layer's input positions: after a `Conv1D` map a token count through
  /// `Conv1D.outputLength(forInputLength:)`. Values above the sequence length are clamped.
  /// Set it with `setValidLengths(_:)` to have the values checked.
  public private(set) var validLengths: [Int]?

  private var output: [Float] = []
  private var argmax: [Int] = []
  /// `.logSumExp` only: softmax weights of the last training forward, `[batch, length, channels]`.
  private var weights: [Float] = []
  private var cachedShape: [Int]?
  private var cachedLengths: [Int] = []

  /// Creates a pooling layer.
  /// - Parameter mode: `.mean`, `.max`, `.meanAndMax` or `.logSumExp`.
  public init(mode: Mode) {
    self.mode = mode
  }

  /// Sets the valid lengths used by the following `forward` calls.
  /// - Parameter lengths: `[batch]` non-negative counts, or `nil` for "all positions".
  /// - Throws: `NetworkError.invalidInput` for a negative length.
  public func setValidLengths(_ lengths: [Int]?) throws(NetworkError) {
    if let lengths, let bad = lengths.firstIndex(where: { $0 < 0 }) {
      throw NetworkError(.invalidInput, "valid length of item \(bad) is negative (\(lengths[bad]))")
    }
    validLengths = lengths
  }

  /// Output features for `channels` input channels.
  public func outputFeatures(channels: Int) -> Int { mode == .meanAndMax ? 2 * channels : channels }

  /// Pools each item.
  /// - Parameters:
  ///   - input: `[batch, length, channels]`; `validLengths`, if set, has `batch` entries.
  ///   - training: Whether `backward` will follow.
  /// - Returns: `[batch, channels]`, or `[batch, 2 · channels]` for `.meanAndMax`.
  public func forward(_ input: Tensor, training: Bool) -> Tensor {
    precondition(input.shape.count == 3, "GlobalPooling: input shape \(input.shape), expected rank 3")
    let batch = input.shape[0]
    let length = input.shape[1]
    let channels = input.shape[2]
    let lengths = clampedLengths(batch: batch, length: length)
    defer { remember(input.shape, lengths: lengths, training: training) }
    if mode == .logSumExp { return forwardLogSumExp(input, lengths: lengths, training: training) }
    let width = outputFeatures(channels: channels)
    let meanOffset: Int? = mode == .max ? nil : 0
    let maxOffset: Int? = mode == .mean ? nil : (mode == .max ? 0 : channels)
    resize(&output, to: batch * width)
    if maxOffset != nil, argmax.count != batch * channels {
      argmax = [Int](repeating: -1, count: batch * channels)
    }
    input.storage.withUnsafeBufferPointer { px in
      output.withUnsafeMutableBufferPointer { out in
        argmax.withUnsafeMutableBufferPointer { pa in
          for b in 0..<batch {
            let valid = lengths[b]
            let outBase = b * width
            let inBase = b * length * channels
            if let meanOffset {
              for c in 0..<channels {
                var sum: Float = 0
                for t in 0..<valid { sum += px[inBase + t * channels + c] }
                out[outBase + meanOffset + c] = valid > 0 ? sum / Float(valid) : 0
              }
            }
            if let maxOffset {
              for c in 0..<channels {
                var best = -Float.infinity
                var bestIndex = -1
                for t in 0..<valid where px[inBase + t * channels + c] > best {
                  best = px[inBase + t * channels + c]
                  bestIndex = t
                }
                out[outBase + maxOffset + c] = bestIndex >= 0 ? best : 0
                pa[b * channels + c] = bestIndex
              }
            }
          }
        }
      }
    }
    return Tensor(shape: [batch, width], storage: output)
  }

  /// `validLengths` clamped to `length`, or `length` for every item.
  private func clampedLengths(batch: Int, length: Int) -> [Int] {
    guard let validLengths else { return [Int](repeating: length, count: batch) }
    precondition(
      validLengths.count == batch, "GlobalPooling: \(validLengths.count) lengths for \(batch) items")
    return validLengths.map { Swift.min($0, length) }
  }

  /// Keeps what `backward` needs after a training forward (and forgets it after an inference one).
  private func remember(_ shape: [Int], lengths: [Int], training: Bool) {
    cachedShape = training ? shape : nil
    cachedLengths = training ? lengths : []
  }

  /// Spreads the gradient over the pooled positions (evenly for means, to the arg-max for maxima).
  /// - Parameter gradientOutput: `[batch, channels]` (or `[batch, 2 · channels]`).
  /// - Returns: `[batch, length, channels]`, zero at padded positions.
  public func backward(_ gradientOutput: Tensor) -> Tensor {
    guard let shape = cachedShape else {
      preconditionFailure("GlobalPooling: backward without a training-mode forward")
    }
    let batch = shape[0]
    let length = shape[1]
    let channels = shape[2]
    let width = outputFeatures(channels: channels)
    precondition(gradientOutput.shape == [batch, width], "GlobalPooling: gradient shape mismatch")
    if mode == .logSumExp {
      // d/dx[t] log Σ exp(x) = softmax(x)[t]; the weights are zero at padded positions.
      var gradientInput = weights
      for b in 0..<batch {
        for t in 0..<length {
          for c in 0..<channels {
            gradientInput[(b * length + t) * channels + c] *= gradientOutput.storage[b * channels + c]
          }
        }
      }
      return Tensor(shape: shape, storage: gradientInput)
    }
    let meanOffset: Int? = mode == .max ? nil : 0
    let maxOffset: Int? = mode == .mean ? nil : (mode == .max ? 0 : channels)
    var gradientInput = [Float](repeating: 0, count: batch * length * channels)
    gradientOutput.storage.withUnsafeBufferPointer { pg in
      gradientInput.withUnsafeMutableBufferPointer { pdx in
        for b in 0..<batch {
          let valid = cachedLengths[b]
          let inBase = b * length * channels
          if let meanOffset, valid > 0 {
            let scale = 1 / Float(valid)
            for t in 0..<valid {
              for c in 0..<channels {
                pdx[inBase + t * channels + c] += pg[b * width + meanOffset + c] * scale
              }
            }
          }
          if let maxOffset {
            for c in 0..<channels {
              let t = argmax[b * channels + c]
              if t >= 0 { pdx[inBase + t * channels + c] += pg[b * width + maxOffset + c] }
            }
          }
        }
      }
    }
    return Tensor(shape: shape, storage: gradientInput)
  }

  /// `.logSumExp` forward: per item and channel, `m + log Σ_t exp(x[t] − m)` with `m` the valid
  /// maximum (no overflow); an item without valid positions gives 0. Training keeps the softmax
  /// weights for `backward`.
  private func forwardLogSumExp(_ input: Tensor, lengths: [Int], training: Bool) -> Tensor {
    let batch = input.shape[0]
    let length = input.shape[1]
    let channels = input.shape[2]
    resize(&output, to: batch * channels)
    if training { weights = [Float](repeating: 0, count: batch * length * channels) }
    input.storage.withUnsafeBufferPointer { px in
      for b in 0..<batch {
        let valid = lengths[b]
        let inBase = b * length * channels
        for c in 0..<channels {
          guard valid > 0 else {
            output[b * channels + c] = 0
            continue
          }
          var largest = -Float.infinity
          for t in 0..<valid { largest = Swift.max(largest, px[inBase + t * channels + c]) }
          var sum: Float = 0
          for t in 0..<valid { sum += FastMath.exp(px[inBase + t * channels + c] - largest) }
          output[b * channels + c] = largest + Float(log(Double(sum)))
          guard training else { continue }
          for t in 0..<valid {
            let index = inBase + t * channels + c
            weights[index] = FastMath.exp(px[index] - largest) / sum
          }
        }
      }
    }
    return Tensor(shape: [batch, channels], storage: output)
  }
}
