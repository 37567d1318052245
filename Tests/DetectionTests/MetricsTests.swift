import Detection
import Foundation
import TestSupport
import XCTest

/// Builds examples from attack and benign scores (family "a"/"b").
private func examples(attacks: [Float], benign: [Float]) -> [ScoredExample] {
  attacks.map { ScoredExample(score: $0, isAttack: true, family: "a") }
    + benign.map { ScoredExample(score: $0, isAttack: false, family: "b") }
}

final class MetricsTests: XCTestCase {
  // MARK: AUC

  func testPerfectSeparationHasAUCOne() throws {
    let data = examples(attacks: [0.9, 0.8, 0.7], benign: [0.1, 0.2, 0.3, 0.4])
    XCTAssertEqual(try XCTUnwrap(Metrics.rocAUC(data)), 1, accuracy: 1e-12)
    XCTAssertEqual(try XCTUnwrap(ROCCurve(data)).auc, 1, accuracy: 1e-12)
  }

  func testInvertedSeparationHasAUCZero() throws {
    let data = examples(attacks: [0.1, 0.2], benign: [0.8, 0.9, 0.95])
    XCTAssertEqual(try XCTUnwrap(Metrics.rocAUC(data)), 0, accuracy: 1e-12)
    XCTAssertEqual(try XCTUnwrap(ROCCurve(data)).auc, 0, accuracy: 1e-12)
  }

  func testAllTiesHaveAUCHalf() throws {
    let data = examples(attacks: [0.5, 0.5, 0.5], benign: [0.5, 0.5])
    XCTAssertEqual(try XCTUnwrap(Metrics.rocAUC(data)), 0.5, accuracy: 1e-12)
    let curve = try XCTUnwrap(ROCCurve(data))
    XCTAssertEqual(curve.auc, 0.5, accuracy: 1e-12)
    // One diagonal step: (0,0) → (1,1).
    XCTAssertEqual(curve.points.count, 2)
    XCTAssertEqual(curve.points[1].falsePositiveRate, 1)
    XCTAssertEqual(curve.points[1].truePositiveRate, 1)
    XCTAssertEqual(curve.points[1].threshold, 0.5)
  }

  /// Attacks {0.8, 0.6, 0.4}, benign {0.6, 0.2}. Pairs (a, b): (0.8,0.6)=1, (0.8,0.2)=1,
  /// (0.6,0.6)=½, (0.6,0.2)=1, (0.4,0.6)=0, (0.4,0.2)=1 → 4.5 / 6 = 0.75.
  func testHandComputedExampleWithTies() throws {
    let data = examples(attacks: [0.8, 0.6, 0.4], benign: [0.6, 0.2])
    XCTAssertEqual(try XCTUnwrap(Metrics.rocAUC(data)), 0.75, accuracy: 1e-12)
    let curve = try XCTUnwrap(ROCCurve(data))
    XCTAssertEqual(curve.auc, 0.75, accuracy: 1e-12)
    let fpr = curve.points.map(\.falsePositiveRate)
    let tpr = curve.points.map(\.truePositiveRate)
    XCTAssertEqual(fpr, [0, 0, 0.5, 0.5, 1])
    XCTAssertEqual(tpr, [0, 1.0 / 3, 2.0 / 3, 1, 1])
    XCTAssertEqual(curve.points.map(\.threshold).dropFirst(), [0.8, 0.6, 0.4, 0.2])
    XCTAssertGreaterThan(curve.points[0].threshold, 0.8)
  }

  func testTrapezoidAgreesWithMannWhitneyOnRandomTiedScores() throws {
    var rng = SeededGenerator(seed: 7)
    for trial in 0..<50 {
      let p = 1 + Int(rng.next() % 40)
      let n = 1 + Int(rng.next() % 40)
      // Coarse grid so ties are common.
      let grid = Float(1 + rng.next() % 8)
      let attacks = (0..<p).map { _ in (rng.uniform(0...1) * grid).rounded() / grid + 0.1 }
      let benign = (0..<n).map { _ in (rng.uniform(0...1) * grid).rounded() / grid }
      let data = examples(attacks: attacks, benign: benign)
      let mw = try XCTUnwrap(Metrics.rocAUC(data))
      let curve = try XCTUnwrap(ROCCurve(data))
      XCTAssertEqual(curve.auc, mw, accuracy: 1e-12, "trial \(trial)")
      // Brute-force pair count.
      var wins = 0.0
      for a in attacks { for b in benign { wins += a > b ? 1 : (a == b ? 0.5 : 0) } }
      XCTAssertEqual(mw, wins / Double(p * n), accuracy: 1e-12, "trial \(trial)")
      // Thresholds strictly decrease, rates never decrease.
      for (previous, next) in zip(curve.points, curve.points.dropFirst()) {
        XCTAssertGreaterThan(previous.threshold, next.threshold)
        XCTAssertLessThanOrEqual(previous.falsePositiveRate, next.falsePositiveRate)
        XCTAssertLessThanOrEqual(previous.truePositiveRate, next.truePositiveRate)
      }
    }
  }

  func testAUCIsNilWhenAClassIsMissing() {
    XCTAssertNil(Metrics.rocAUC(examples(attacks: [0.3], benign: [])))
    XCTAssertNil(ROCCurve(examples(attacks: [], benign: [0.3])))
    XCTAssertNil(BinaryMetrics.compute(examples(attacks: [0.3], benign: []), threshold: 0.5).rocAUC)
  }

  // MARK: Binary metrics

  /// TP = 3 (0.9, 0.8, 0.5), FN = 1 (0.2), FP = 1 (0.7), TN = 3 (0.1, 0.3, 0.49).
  func testMetricsAtThresholdOnHandMadeConfusionMatrix() {
    let data = examples(attacks: [0.9, 0.8, 0.5, 0.2], benign: [0.7, 0.1, 0.3, 0.49])
    let metrics = BinaryMetrics.compute(data, threshold: 0.5)
    XCTAssertEqual(metrics.count, 8)
    XCTAssertEqual(metrics.positives, 4)
    XCTAssertEqual(metrics.negatives, 4)
    XCTAssertEqual(metrics.truePositives, 3)
    XCTAssertEqual(metrics.falseNegatives, 1)
    XCTAssertEqual(metrics.falsePositives, 1)
    XCTAssertEqual(metrics.trueNegatives, 3)
    XCTAssertEqual(metrics.accuracy, 0.75, accuracy: 1e-12)
    XCTAssertEqual(metrics.precision, 0.75, accuracy: 1e-12)
    XCTAssertEqual(metrics.recall, 0.75, accuracy: 1e-12)
    XCTAssertEqual(metrics.truePositiveRate, 0.75, accuracy: 1e-12)
    XCTAssertEqual(metrics.f1, 0.75, accuracy: 1e-12)
    XCTAssertEqual(metrics.falsePositiveRate, 0.25, accuracy: 1e-12)
    // Pairs won: 0.9 and 0.8 beat all 4; 0.5 beats 3; 0.2 beats 1 → 12 / 16.
    XCTAssertEqual(try XCTUnwrap(metrics.rocAUC), 0.75, accuracy: 1e-12)
  }

  func testRatesWithEmptyDenominatorsAreZero() {
    let metrics = BinaryMetrics.compute(examples(attacks: [0.1], benign: []), threshold: 0.5)
    XCTAssertEqual(metrics.precision, 0)
    XCTAssertEqual(metrics.recall, 0)
    XCTAssertEqual(metrics.f1, 0)
    XCTAssertEqual(metrics.falsePositiveRate, 0)
    let empty = BinaryMetrics.compute([], threshold: 0.5)
    XCTAssertEqual(empty.count, 0)
    XCTAssertEqual(empty.accuracy, 0)
  }

  func testBinaryMetricsJSONRoundTripUsesSnakeCase() throws {
    let metrics = BinaryMetrics.compute(examples(attacks: [0.9, 0.2], benign: [0.1]), threshold: 0.5)
    let data = try JSONEncoder().encode(metrics)
    let text = String(decoding: data, as: UTF8.self)
    XCTAssertTrue(text.contains("\"false_positive_rate\""), text)
    XCTAssertTrue(text.contains("\"roc_auc\""), text)
    XCTAssertEqual(try JSONDecoder().decode(BinaryMetrics.self, from: data), metrics)
  }

  // MARK: Calibration

  func testThresholdWithoutTies() throws {
    let benign: [Float] = (1...100).map { Float($0) / 100 }
    // k = 1 allowed: reject only 1.00 → smallest threshold above 0.99.
    let t = try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 0.01)
    XCTAssertEqual(t, Float(0.99).nextUp)
    XCTAssertEqual(benign.count(where: { $0 >= t }), 1)
    // 0.29 × 100 is 28.999… in floating point: still 29 allowed.
    let t29 = try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 0.29)
    XCTAssertEqual(benign.count(where: { $0 >= t29 }), 29)
  }

  func testThresholdWithTiesAtTheCutStaysAtOrBelowTarget() throws {
    // Ten scores; target 20% allows 2, but the 2nd and 3rd highest tie at 0.8.
    let benign: [Float] = [0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.0]
    let t = try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 0.2)
    XCTAssertEqual(t, Float(0.8).nextUp)
    XCTAssertEqual(benign.count(where: { $0 >= t }), 1)
    // Target 30% allows 3: the tied pair fits, the next score is 0.5.
    let t30 = try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 0.3)
    XCTAssertEqual(t30, Float(0.5).nextUp)
    XCTAssertEqual(benign.count(where: { $0 >= t30 }), 3)
  }

  func testThresholdEdgeCases() throws {
    let benign: [Float] = [0.2, 0.7, 0.4]
    let zero = try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 0)
    XCTAssertEqual(zero, Float(0.7).nextUp)
    XCTAssertEqual(try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 1), 0.2)
    XCTAssertEqual(try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 5), 0.2)
    // Fewer examples than 1 / target: no false positive can be afforded.
    XCTAssertEqual(try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: 0.01), zero)
    XCTAssertThrowsError(try Metrics.threshold(forBenignScores: [], targetFalsePositiveRate: 0.01)) {
      XCTAssertEqual(($0 as? DetectionError)?.code, .invalidInput)
    }
    XCTAssertThrowsError(try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: -0.1))
    XCTAssertThrowsError(try Metrics.threshold(forBenignScores: benign, targetFalsePositiveRate: .nan))
    XCTAssertThrowsError(try Metrics.threshold(forBenignScores: [0.1, .nan], targetFalsePositiveRate: 0.1))
  }

  func testTPRAtFPRCalibratesOnOwnNegatives() throws {
    let benign: [Float] = (0..<10).map { Float($0) / 10 }  // 0.0 … 0.9
    let data = examples(attacks: [0.95, 0.85, 0.75, 0.05], benign: benign)
    // 10% allows one benign (0.9): threshold just above 0.8 → attacks 0.95, 0.85 → 2/4.
    XCTAssertEqual(try Metrics.tprAtFPR(data, 0.1), 0.5, accuracy: 1e-12)
    XCTAssertEqual(try Metrics.tprAtFPR(data, 0), 0.25, accuracy: 1e-12)
    XCTAssertThrowsError(try Metrics.tprAtFPR(examples(attacks: [0.5], benign: []), 0.01))
    XCTAssertThrowsError(try Metrics.tprAtFPR(examples(attacks: [], benign: [0.5]), 0.01))
  }

  // MARK: Macro TPR

  func testMacroTPRAveragesFamiliesNotExamples() throws {
    var data = (0..<98).map { _ in ScoredExample(score: 0.9, isAttack: true, family: "big") }
    data += [0.9, 0.1].map { ScoredExample(score: $0, isAttack: true, family: "small") }
    data += [ScoredExample(score: 0.2, isAttack: false, family: "benign")]
    // big: 1.0, small: 0.5 → macro 0.75 (micro would be 0.99).
    XCTAssertEqual(try XCTUnwrap(Metrics.macroTPR(data, threshold: 0.5)), 0.75, accuracy: 1e-12)
    XCTAssertEqual(try Metrics.macroTPRAtFPR(data, 0.01), 0.75, accuracy: 1e-12)
    XCTAssertNil(Metrics.macroTPR(examples(attacks: [], benign: [0.1]), threshold: 0.5))
  }

  // MARK: Length matching

  private func lengthData(seed: UInt64) -> [ScoredExample] {
    var rng = SeededGenerator(seed: seed)
    var data: [ScoredExample] = []
    for i in 0..<400 {
      let isAttack = i % 3 == 0
      // Attacks skew long, benign skew short.
      let exponent = isAttack ? rng.uniform(2...8) : rng.uniform(1...6)
      let tokens = Int(Float(M_E).squareRoot() * Foundation.exp(exponent))
      data.append(
        ScoredExample(
          score: rng.uniform(0...1), isAttack: isAttack, family: isAttack ? "a\(i % 2)" : "b",
          source: "s", tokens: tokens))
    }
    return data
  }

  func testLengthMatchingPicksEqualCountsPerBin() throws {
    let data = lengthData(seed: 3)
    let subset = try Metrics.lengthMatched(data, bins: 6, seed: 42)
    XCTAssertEqual(subset.bins.count, 6)
    let tokens = data.map { max(1, $0.tokens) }
    let low = log(Double(try XCTUnwrap(tokens.min())))
    let high = log(Double(try XCTUnwrap(tokens.max())))
    let width = (high - low) / 6
    for (index, bin) in subset.bins.enumerated() {
      let members = subset.examples.filter {
        min(5, Int((log(Double(max(1, $0.tokens))) - low) / width)) == index
      }
      XCTAssertEqual(members.count(where: \.isAttack), bin.pairs, "bin \(index)")
      XCTAssertEqual(members.count(where: { !$0.isAttack }), bin.pairs, "bin \(index)")
      XCTAssertEqual(bin.pairs, min(bin.attacks, bin.benign))
    }
    XCTAssertEqual(subset.examples.count, 2 * subset.bins.map(\.pairs).reduce(0, +))
    XCTAssertGreaterThan(subset.examples.count, 0)
    XCTAssertEqual(subset.bins.map(\.attacks).reduce(0, +), data.count(where: \.isAttack))
  }

  func testLengthMatchingIsDeterministic() throws {
    let data = lengthData(seed: 5)
    let first = try Metrics.lengthMatched(data, bins: 5, seed: 9)
    let second = try Metrics.lengthMatched(data, bins: 5, seed: 9)
    XCTAssertEqual(first, second)
    let other = try Metrics.lengthMatched(data, bins: 5, seed: 10)
    XCTAssertEqual(other.bins, first.bins)
    XCTAssertNotEqual(other.examples, first.examples)
  }

  func testLengthMatchingEdgeCases() throws {
    XCTAssertThrowsError(try Metrics.lengthMatched([], bins: 0))
    XCTAssertEqual(try Metrics.lengthMatched([], bins: 3).examples, [])
    // All the same length: one effective bin.
    let same = examples(attacks: [0.1, 0.2, 0.3], benign: [0.4]).map {
      var copy = $0
      copy.tokens = 12
      return copy
    }
    let subset = try Metrics.lengthMatched(same, bins: 4)
    XCTAssertEqual(subset.examples.count, 2)
    XCTAssertEqual(subset.examples.count(where: \.isAttack), 1)
  }
}
