import Embeddings
import EncoderTuning
import Foundation
import LinearAlgebra
import NeuralNetwork
import TestSupport
import XCTest

/// `TrainableBertLayer` against the encoder's own forward pass, and its backward pass against
/// central finite differences, on the tiny fixture encoder (hidden 32, 4 heads, intermediate 64).
final class TrainableBertLayerTests: XCTestCase {
  /// Packed batch lengths: a one-row sequence and two longer ones.
  let lengths = [1, 7, 19]

  /// The fixture encoder, hidden states entering its top layer for a seeded batch, and the
  /// encoder's own output of that layer.
  func fixture(seed: UInt64 = 11) throws -> (
    encoder: BertEncoder, top: BertLayerWeights, states: [Matrix], expected: [Float]
  ) {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    let top = try XCTUnwrap(encoder.layers.last)
    var rng = SeededGenerator(seed: seed)
    let batch = lengths.map { length in
      (0..<length).map { _ in Int.random(in: 0..<encoder.configuration.vocabularySize, using: &rng) }
    }
    let below = encoder.layers.count - 1
    let states = try encoder.hiddenStates(batch: batch, layerCount: below)
    let expected = try encoder.continueEncoding(states, fromLayer: below).flatMap(\.storage)
    return (encoder, top, states, expected)
  }

  func testForwardEqualsTheEncodersTopLayer() throws {
    let (encoder, top, states, expected) = try fixture()
    let layer = TrainableBertLayer(weights: top, configuration: encoder.configuration, name: "top")
    let input = states.flatMap(\.storage)
    let trained = layer.forward(input, lengths: lengths, training: true)
    let evaluated = layer.forward(input, lengths: lengths, training: false)
    XCTAssertEqual(trained.count, lengths.reduce(0, +) * encoder.configuration.hiddenSize)
    XCTAssertLessThanOrEqual(maxAbsoluteDifference(trained, expected), 1e-5)
    XCTAssertLessThanOrEqual(maxAbsoluteDifference(evaluated, expected), 1e-5)
  }

  func testParametersFollowTheLayerWeightsOrder() throws {
    let (encoder, top, _, _) = try fixture()
    let layer = TrainableBertLayer(weights: top, configuration: encoder.configuration, name: "tuned")
    let tensors = top.namedTensors(configuration: encoder.configuration)
    XCTAssertEqual(layer.parameters.map(\.name), tensors.map { "tuned.\($0.name)" })
    XCTAssertEqual(layer.parameters.map(\.shape), tensors.map(\.shape))
    XCTAssertEqual(layer.parameters.map(\.value), tensors.map(\.values))
    XCTAssertEqual(layer.parameters.map(\.isRegularized), tensors.map { $0.shape.count == 2 })
    XCTAssertEqual(layer.parameters.filter(\.isRegularized).count, 4)
    XCTAssertEqual(layer.weights, top)
  }

  /// Analytic gradients of `L = Σ r ⊙ output` against central differences with step `h = 1e-2`.
  ///
  /// Tolerance: the loss comes from a float32 forward pass (summed in Double); rounding in the
  /// products and layer norms leaves ~1e-6 of noise in `L`, i.e. ~1e-4 after dividing by `2h`
  /// (2–3e-4 observed). The central difference's truncation error is `O(h²·f‴)`, about 1e-3
  /// relative here (worst observed 4e-3 on gradients of order 0.1). Hence
  /// `|a − n| ≤ 2e-2·max(|a|, |n|) + 1e-3`: an absolute floor of about four times the noise (it
  /// matters for near-zero entries such as the key bias, whose true gradient is exactly zero
  /// because softmax ignores a per-row shift), and a relative term that still catches a wrong
  /// factor or a missing term (off by tens of percent or more on gradients of order 1).
  func testGradientsMatchFiniteDifferences() throws {
    let (encoder, top, states, _) = try fixture()
    let h = encoder.configuration.hiddenSize
    var rng = SeededGenerator(seed: 23)
    // The fixture's weights (std 0.02) make attention nearly uniform and the Q/K gradients tiny;
    // larger query/key/value weights give peaked attention and gradients well above the noise.
    var sharpened = top
    sharpened.qkvWeight = sharpened.qkvWeight.map { _ in rng.uniform(-0.4...0.4) }
    sharpened.attentionOutputWeight = sharpened.attentionOutputWeight.map { _ in rng.uniform(-0.3...0.3) }
    let layer = TrainableBertLayer(weights: sharpened, configuration: encoder.configuration, name: "top")
    var input = states.flatMap(\.storage)
    let weights = (0..<input.count).map { _ in rng.uniform() }
    _ = layer.forward(input, lengths: lengths, training: true)
    layer.parameters.forEach { $0.zeroGradient() }
    let inputGradient = try XCTUnwrap(layer.backward(weights, inputGradient: true))
    XCTAssertEqual(inputGradient.count, input.count)

    func loss() -> Double {
      let output = layer.forward(input, lengths: lengths, training: false)
      return zip(output, weights).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    let step: Float = 1e-2
    func check(_ analytic: Float, _ numeric: Float, _ label: String) -> (Float, Float) {
      let error = abs(analytic - numeric)
      XCTAssertLessThanOrEqual(
        error, 2e-2 * max(abs(analytic), abs(numeric)) + 1e-3,
        "\(label): analytic \(analytic), numeric \(numeric)")
      return (error, error / max(abs(analytic), abs(numeric), 1e-6))
    }

    for parameter in layer.parameters {
      // Stratified by column so the Q, K and V blocks of the fused tensors are all sampled.
      let columns = parameter.shape.last ?? 1
      let rows = parameter.count / columns
      let samples = 12
      var worst: (absolute: Float, relative: Float) = (0, 0)
      var largest: Float = 0
      for s in 0..<samples {
        let column = min(
          columns - 1, s * columns / samples + Int.random(in: 0..<max(1, columns / samples), using: &rng))
        let index = Int.random(in: 0..<rows, using: &rng) * columns + column
        let original = parameter.value[index]
        parameter.value[index] = original + step
        let plus = loss()
        parameter.value[index] = original - step
        let minus = loss()
        parameter.value[index] = original
        let numeric = Float((plus - minus) / Double(2 * step))
        let (absolute, relative) = check(parameter.gradient[index], numeric, "\(parameter.name)[\(index)]")
        largest = max(largest, abs(numeric))
        worst = (max(worst.absolute, absolute), max(worst.relative, relative))
      }
      print(
        "gradient check \(parameter.name): worst |a−n| \(worst.absolute), relative \(worst.relative), "
          + "largest |n| \(largest)")
    }

    // Input entries in every sequence (row 0 is the one-row sequence).
    let offsets = [0, 1, 8]
    var worstInput: Float = 0
    for (sequence, offset) in offsets.enumerated() {
      for _ in 0..<4 {
        let index =
          (offset + Int.random(in: 0..<lengths[sequence], using: &rng)) * h
          + Int.random(in: 0..<h, using: &rng)
        let original = input[index]
        input[index] = original + step
        let plus = loss()
        input[index] = original - step
        let minus = loss()
        input[index] = original
        let numeric = Float((plus - minus) / Double(2 * step))
        worstInput = max(worstInput, check(inputGradient[index], numeric, "input[\(index)]").0)
      }
    }
    print("gradient check input: worst |a−n| \(worstInput)")

    // Sequences do not leak: changing the last sequence's output weights leaves the input
    // gradient of the first two unchanged (and does change the last one's).
    var changed = weights
    for i in (8 * h)..<changed.count { changed[i] = rng.uniform() }
    _ = layer.forward(input, lengths: lengths, training: true)
    let changedGradient = try XCTUnwrap(layer.backward(changed, inputGradient: true))
    XCTAssertLessThanOrEqual(
      maxAbsoluteDifference(changedGradient[..<(8 * h)], inputGradient[..<(8 * h)]), 1e-7)
    XCTAssertGreaterThan(maxAbsoluteDifference(changedGradient[(8 * h)...], inputGradient[(8 * h)...]), 1e-3)
  }

  func testGradientsAccumulate() throws {
    let (encoder, top, states, _) = try fixture()
    let layer = TrainableBertLayer(weights: top, configuration: encoder.configuration, name: "top")
    let input = states.flatMap(\.storage)
    var rng = SeededGenerator(seed: 31)
    let weights = (0..<input.count).map { _ in rng.uniform() }
    _ = layer.forward(input, lengths: lengths, training: true)
    XCTAssertNil(layer.backward(weights, inputGradient: false))
    let once = layer.parameters.map(\.gradient)
    XCTAssertTrue(once.allSatisfy { gradient in gradient.contains { $0 != 0 } })
    XCTAssertNotNil(layer.backward(weights, inputGradient: true))
    for (parameter, single) in zip(layer.parameters, once) {
      XCTAssertTrue(
        allClose(parameter.gradient, single.map { 2 * $0 }, absolute: 1e-6, relative: 1e-5), parameter.name)
    }
  }

  func testWeightsRoundTripThroughAnEncoder() throws {
    let (encoder, top, states, _) = try fixture()
    let layer = TrainableBertLayer(weights: top, configuration: encoder.configuration, name: "top")
    var rng = SeededGenerator(seed: 41)
    for parameter in layer.parameters {
      for i in 0..<parameter.count { parameter.value[i] += 0.05 * rng.uniform() }
    }
    let weights = layer.weights
    XCTAssertNotEqual(weights, top)
    for (parameter, tensor) in zip(
      layer.parameters, weights.namedTensors(configuration: encoder.configuration))
    {
      XCTAssertEqual(parameter.value, tensor.values, parameter.name)
    }
    let tuned = try encoder.replacingTopLayers(with: [weights])
    let below = encoder.layers.count - 1
    let expected = try tuned.continueEncoding(states, fromLayer: below).flatMap(\.storage)
    let output = layer.forward(states.flatMap(\.storage), lengths: lengths, training: false)
    XCTAssertLessThanOrEqual(maxAbsoluteDifference(output, expected), 1e-5)
  }
}
