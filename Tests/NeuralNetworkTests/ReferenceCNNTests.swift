import NeuralNetwork
import TestSupport
import XCTest

final class ReferenceCNNTests: XCTestCase {
  /// The design's reference CNN at its real width on MiniLM-sized tokens (d = 384): shapes of every
  /// layer, one training step, and the time of an inference batch and of a training step.
  func testReferenceArchitectureShapesAndTiming() throws {
    let (batch, length, dimensions, classes) = (8, 64, 384, 5)
    var random = NetworkRandom(seed: 1)
    let network = Sequential([
      Conv1D(
        name: "conv1", inputChannels: dimensions, outputChannels: 32, kernelSize: 3,
        activation: .relu, random: &random),
      Conv1D(
        name: "conv2", inputChannels: 32, outputChannels: 64, kernelSize: 3, activation: .relu,
        random: &random),
      Flatten(),
      Dense(
        name: "dense", inputFeatures: (length - 4) * 64, outputFeatures: 128, activation: .relu,
        random: &random),
      Dense(name: "logits", inputFeatures: 128, outputFeatures: classes, random: &random),
    ])
    var rng = SeededGenerator(seed: 2)
    let inputs = GradientChecking.randomTensor([batch, length, dimensions], &rng)
    let outputs = network.forwardCollectingOutputs(inputs, training: false)
    XCTAssertEqual(
      outputs.map(\.shape),
      [[batch, 62, 32], [batch, 60, 64], [batch, 3840], [batch, 128], [batch, classes]])
    XCTAssertEqual(outputs[0].itemMatrix(1).rows, 62)
    XCTAssertEqual(
      outputs[0].itemMatrix(1).storage, Array(outputs[0].storage[(62 * 32)..<(2 * 62 * 32)]))

    let clock = ContinuousClock()
    let inference = clock.measure {
      for _ in 0..<5 { _ = network.forward(inputs, training: false) }
    }
    let adam = Adam(parameters: network.parameters)
    let labels = (0..<batch).map { $0 % classes }
    var loss: Float = 0
    let training = try clock.measure {
      for _ in 0..<5 {
        let result = try softmaxCrossEntropy(
          logits: network.forward(inputs, training: true), labels: labels)
        network.backward(result.gradient)
        adam.step()
        loss = result.loss
      }
    }
    XCTAssertTrue(loss.isFinite)
    print(
      "reference CNN, batch \(batch)×\(length)×\(dimensions): inference \(inference / 5),",
      "training step \(training / 5)")
  }
}
