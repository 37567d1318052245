import Embeddings
import EncoderTuning
import Foundation
import LinearAlgebra
import TestSupport
import XCTest

/// `EncoderFineTuning` on the tiny fixture encoder: a learnable toy task, determinism, and refusals.
final class EncoderFineTuningTests: XCTestCase {
  /// 48 random id sequences (5–24 tokens); the attacks carry token 7 at a few random places, which
  /// the frozen encoder's top layer does not single out on its own.
  func toyTask() throws -> (encoder: BertEncoder, states: [Matrix], isAttack: [Bool]) {
    let encoder = try BertEncoder(directory: Fixtures.url("encoder/tiny-bert"))
    var rng = SeededGenerator(seed: 21)
    var batch: [[Int]] = []
    var isAttack: [Bool] = []
    for index in 0..<48 {
      let length = Int.random(in: 5...24, using: &rng)
      var ids = (0..<length).map { _ in Int.random(in: 10..<211, using: &rng) }
      let attack = index % 2 == 0
      if attack {
        for _ in 0..<3 { ids[Int.random(in: 0..<length, using: &rng)] = 7 }
      }
      batch.append(ids)
      isAttack.append(attack)
    }
    let states = try encoder.hiddenStates(batch: batch, layerCount: encoder.layers.count - 1)
    return (encoder, states, isAttack)
  }

  func settings(epochs: Int = 12) -> FineTuningSettings {
    FineTuningSettings(
      layers: 1, epochs: epochs, crop: 32, batchSize: 8, learningRate: 3e-3, headLearningRate: 3e-2, seed: 4)
  }

  func testLossFallsAndTheTopLayerChangesDeterministically() throws {
    let (encoder, states, isAttack) = try toyTask()
    func run() throws -> EncoderFineTuning.Result {
      var epochs: [Int] = []
      let result = try EncoderFineTuning.train(
        encoder: encoder, settings: settings(), count: states.count, isAttack: isAttack,
        weights: [Float](repeating: 1, count: states.count), states: { $0.map { states[$0] } },
        epochDone: { epoch, _ in epochs.append(epoch) })
      XCTAssertEqual(epochs, Array(1...12))
      return result
    }
    let result = try run()
    let losses = result.epochLosses
    XCTAssertEqual(losses.count, 12)
    XCTAssertTrue(losses.allSatisfy(\.isFinite))
    let first = try XCTUnwrap(losses.first)
    let last = try XCTUnwrap(losses.last)
    XCTAssertLessThan(last, 0.5 * first, "epoch losses \(losses)")
    XCTAssertEqual(result.layers.count, 1)
    XCTAssertNotEqual(result.layers.first, encoder.layers.last)
    XCTAssertEqual(try run().layers, result.layers, "same seed, same layers")
  }

  func testWeightsScaleTheLoss() throws {
    let (encoder, states, isAttack) = try toyTask()
    func firstLoss(weight: Float) throws -> Double {
      let result = try EncoderFineTuning.train(
        encoder: encoder, settings: settings(epochs: 1), count: states.count, isAttack: isAttack,
        weights: [Float](repeating: weight, count: states.count), states: { $0.map { states[$0] } })
      return try XCTUnwrap(result.epochLosses.first)
    }
    // One epoch of identical steps except for the loss scale; Adam is scale-invariant, so the
    // first epoch's mean loss scales exactly with the weight (up to float rounding in Adam).
    XCTAssertEqual(try firstLoss(weight: 2), 2 * (try firstLoss(weight: 1)), accuracy: 1e-3)
  }

  func testRefusesBadSettingsAndInputs() throws {
    let (encoder, states, isAttack) = try toyTask()
    let load: ([Int]) throws -> [Matrix] = { $0.map { states[$0] } }
    let ones = [Float](repeating: 1, count: states.count)
    var tooDeep = settings()
    tooDeep.layers = encoder.layers.count + 1
    var noEpochs = settings()
    noEpochs.epochs = 0
    for bad in [tooDeep, noEpochs] {
      XCTAssertThrowsError(
        try EncoderFineTuning.train(
          encoder: encoder, settings: bad, count: states.count, isAttack: isAttack, weights: ones,
          states: load)
      ) { XCTAssertEqual(($0 as? EncoderTuningError)?.code, .invalidConfiguration) }
    }
    XCTAssertThrowsError(
      try EncoderFineTuning.train(
        encoder: encoder, settings: settings(), count: states.count,
        isAttack: [Bool](repeating: true, count: states.count), weights: ones, states: load)
    ) { XCTAssertEqual(($0 as? EncoderTuningError)?.code, .invalidInput) }
    XCTAssertThrowsError(
      try EncoderFineTuning.train(
        encoder: encoder, settings: settings(), count: states.count, isAttack: isAttack, weights: ones,
        states: { _ in [Matrix(rows: 3, columns: 5)] })
    ) { XCTAssertEqual(($0 as? EncoderTuningError)?.code, .invalidInput) }
  }
}
