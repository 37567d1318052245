import Foundation
import LinearAlgebra
import NeuralNetwork
import TestSupport
import XCTest

@testable import Detection

/// `classifier.familyBalance`: attack rows weighted by their family's size, so that a small family
/// is not drowned by a large one.
final class FamilyBalanceTests: XCTestCase {
  func testWeightsFollowTheFamilySizesAndKeepTheAttackRowsMeanAtOne() {
    let families: [String?] = ["a", "a", "a", nil, "b", nil]
    // Exponent 1: a weighs 1/3 per row, b 1; their mean over the four attack rows is 1/2.
    let full = DetectorTraining.familyWeights(families: families, exponent: 1)
    XCTAssertEqual(full.count, families.count)
    let expectedFull: [Float] = [2.0 / 3, 2.0 / 3, 2.0 / 3, 1, 2, 1]
    for (weight, expected) in zip(full, expectedFull) {
      XCTAssertEqual(weight, expected, accuracy: 1e-6)
    }
    // Exponent 1/2: 1/√3 and 1, scaled by their mean (3/√3 + 1) / 4.
    let root = DetectorTraining.familyWeights(families: families, exponent: 0.5)
    let mean = (3 / Float(3).squareRoot() + 1) / 4
    XCTAssertEqual(root[0], 1 / Float(3).squareRoot() / mean, accuracy: 1e-6)
    XCTAssertEqual(root[4], 1 / mean, accuracy: 1e-6)
    XCTAssertEqual([root[3], root[5]], [1, 1])
    let attackMean = (root[0] + root[1] + root[2] + root[4]) / 4
    XCTAssertEqual(attackMean, 1, accuracy: 1e-6)
    // Exponent 0, or no attack rows: every row weighs 1.
    XCTAssertEqual(
      DetectorTraining.familyWeights(families: families, exponent: 0), Array(repeating: 1, count: 6))
    XCTAssertEqual(DetectorTraining.familyWeights(families: [nil, nil], exponent: 1), [1, 1])
    XCTAssertEqual(DetectorTraining.familyWeights(families: [], exponent: 1), [])
  }

  func testRowWeightsCombineTheTwoClassesSettings() {
    let attacks: [String?] = ["a", "a", "b", nil, nil, nil, nil]
    let benign: [String?] = [nil, nil, nil, "chat", "chat", "chat", "query"]
    var settings = DetectorConfiguration.Classifier()
    XCTAssertNil(
      DetectorTraining.rowWeights(attackFamilies: attacks, benignFamilies: benign, settings: settings))
    settings.familyBalance = 1
    XCTAssertEqual(
      DetectorTraining.rowWeights(attackFamilies: attacks, benignFamilies: benign, settings: settings),
      [0.75, 0.75, 1.5, 1, 1, 1, 1])
    settings.benignBalance = 1
    // Benign: chat 1/3 and query 1 per row, mean 1/2 over the four benign rows.
    let both = DetectorTraining.rowWeights(
      attackFamilies: attacks, benignFamilies: benign, settings: settings)
    let expected: [Float] = [0.75, 0.75, 1.5, 2.0 / 3, 2.0 / 3, 2.0 / 3, 2]
    XCTAssertEqual(both?.count, expected.count)
    for (weight, value) in zip(both ?? [], expected) { XCTAssertEqual(weight, value, accuracy: 1e-6) }
    settings.familyBalance = nil
    let benignOnly = DetectorTraining.rowWeights(
      attackFamilies: attacks, benignFamilies: benign, settings: settings)
    XCTAssertEqual(benignOnly?.prefix(3).map { $0 }, [1, 1, 1])
  }

  func testTheSettingIsValidatedAndStoredOnlyWhenOn() throws {
    let plain = try DetectionFixture.configuration(preset: "default")
    XCTAssertNil(plain.classifier.familyBalance)
    XCTAssertFalse(plain.json().contains("familyBalance"), "a configuration without it keeps its JSON")
    var balanced = plain
    try balanced.apply("classifier.familyBalance=0.5")
    XCTAssertEqual(balanced.classifier.familyBalance, 0.5)
    XCTAssertTrue(balanced.json().contains("\"familyBalance\":0.5"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(balanced.json()), balanced)
    var off = balanced
    try off.apply("classifier.familyBalance=0")
    XCTAssertEqual(off, plain, "0 is stored as no field")
    XCTAssertEqual(off.json(), plain.json())
    var benign = plain
    try benign.apply("classifier.benignBalance=1")
    XCTAssertTrue(benign.json().contains("\"benignBalance\":1"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(benign.json()), benign)
    try benign.apply("classifier.benignBalance=0")
    XCTAssertEqual(benign.json(), plain.json())
    for key in ["familyBalance", "benignBalance"] {
      for bad in ["-0.1", "1.5", "nan", "yes"] {
        var wrong = plain
        XCTAssertThrowsError(try wrong.apply("classifier.\(key)=\(bad)"), "\(key)=\(bad)") { error in
          if bad != "yes" && bad != "nan" {
            XCTAssertTrue("\(error)".contains("classifier.\(key) in [0, 1]"), "\(error)")
          }
        }
        XCTAssertEqual(wrong, plain)
      }
    }
  }

  func testASmallFamilyWeighsMoreWhenBalanced() throws {
    // One feature: benign rows from −1.2 to −0.8, a large attack family from 0.8 to 1.2 and a family
    // of two at −1, among the benign rows (about 0.04 and 0.30 when written).
    // Unbalanced, the two weigh like two rows against forty benign ones; balanced (exponent 1) they
    // weigh as much as the whole large family, so the classifier's score at −1 rises.
    var values: [Float] = []
    var labels: [Int] = []
    var families: [String?] = []
    for i in 0..<40 {
      values.append(-1.2 + Float(i) * 0.01)
      labels.append(0)
      families.append(nil)
      values.append(0.8 + Float(i) * 0.01)
      labels.append(1)
      families.append("large")
    }
    values += [-1.02, -0.98]
    labels += [1, 1]
    families += ["small", "small"]
    let train = Matrix(rows: values.count, columns: 1, storage: values)
    var settings = DetectorConfiguration.Classifier()
    settings.kind = "logistic"
    settings.epochs = 300
    settings.batchSize = 16
    settings.learningRate = 0.05
    settings.patience = 0
    func scoreAtMinusOne(_ weights: [Float]?) throws -> Float {
      var random = NetworkRandom(seed: 9)
      let model = try DetectorTraining.trainClassifier(
        train: train, trainLabels: labels, sampleWeights: weights,
        validation: Matrix(rows: 0, columns: 1, storage: []), validationLabels: [], settings: settings,
        random: &random)
      let logit = ScoringModel.logitDifferences(
        Matrix(rows: 1, columns: 1, storage: [-1]), classifier: try model.makeNetwork())[0]
      return 1 / (1 + exp(-logit))
    }
    let plain = try scoreAtMinusOne(nil)
    let balanced = try scoreAtMinusOne(DetectorTraining.familyWeights(families: families, exponent: 1))
    XCTAssertLessThan(plain, 0.5, "unbalanced, the two rows at −1 lose to the benign side")
    XCTAssertGreaterThan(balanced, plain + 0.2, "balanced \(balanced), plain \(plain)")
  }

  func testTrainingAppliesTheSettingsAndStoresThem() throws {
    let plain = try DetectionFixture.configuration(preset: "default")
    let (without, _) = try DetectionFixture.train(plain, cache: nil)
    XCTAssertNil(without.bundle.configuration.classifier.familyBalance)
    XCTAssertNil(without.bundle.configuration.classifier.benignBalance)
    for assignment in ["classifier.familyBalance=1", "classifier.benignBalance=1"] {
      var balanced = plain
      try balanced.apply(assignment)
      let (with, _) = try DetectionFixture.train(balanced, cache: nil)
      XCTAssertNotEqual(
        with.bundle.model.classifier.tensors.map(\.values),
        without.bundle.model.classifier.tensors.map(\.values),
        "\(assignment): the weighted loss trains another classifier")
      XCTAssertEqual(with.bundle.configuration, balanced, assignment)
      XCTAssertGreaterThanOrEqual(DetectionFixture.auc(with.testExamples), 0.9, assignment)
    }
  }
}
