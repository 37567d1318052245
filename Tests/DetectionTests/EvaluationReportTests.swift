import Detection
import Foundation
import TestSupport
import XCTest

/// A small evaluation set: two attack families, two benign families, three sources.
func sampleEvaluationExamples() -> [ScoredExample] {
  var data: [ScoredExample] = []
  // "jailbreak": 4 attacks, 3 above 0.5.
  for (score, tokens) in [(Float(0.9), 300), (0.8, 250), (0.7, 400), (0.3, 200)] {
    data.append(
      ScoredExample(
        score: score, isAttack: true, family: "jailbreak", source: "wild", tokens: tokens,
        features: ["prompt_lid": 10 + score, "curvature_conv1": score / 2, "curvature_conv2": score / 3]))
  }
  // "suffix <gcg>": 2 attacks, 1 above 0.5.
  for (score, tokens) in [(Float(0.6), 40), (0.2, 35)] {
    data.append(
      ScoredExample(
        score: score, isAttack: true, family: "suffix <gcg>", source: "advbench", tokens: tokens,
        features: ["prompt_lid": 12 + score, "curvature_conv1": score, "curvature_conv2": score / 4]))
  }
  // Benign: "alpaca" 4 (one false positive at 0.55), "dolly" 2.
  for (score, tokens) in [(Float(0.1), 30), (0.55, 45), (0.25, 60), (0.05, 20)] {
    data.append(
      ScoredExample(
        score: score, isAttack: false, family: "alpaca", source: "alpaca", tokens: tokens,
        features: ["prompt_lid": 8 + score, "curvature_conv1": 0.1, "curvature_conv2": 0.2]))
  }
  for (score, tokens) in [(Float(0.15), 280), (0.35, 320)] {
    data.append(
      ScoredExample(
        score: score, isAttack: false, family: "dolly", source: "wild", tokens: tokens,
        features: ["prompt_lid": 9, "curvature_conv1": 0.3, "curvature_conv2": 0.1]))
  }
  return data
}

final class EvaluationReportTests: XCTestCase {
  func testABenignOnlyFileReportsFalsePositivesAndNoUndefinedRates() throws {
    // A probe of false positives: every prompt benign, one rejected.
    let benign = sampleEvaluationExamples().filter { !$0.isAttack }
    let report = try EvaluationReport(
      modelID: "m", threshold: 0.5, examples: benign, lengthMatchingBins: 3, lengthMatchingSeed: 7)
    XCTAssertNil(report.lengthMatched, "no attack to match lengths with")
    let text = report.renderText()
    XCTAssertFalse(text.contains("Length-matched"), text)
    XCTAssertFalse(text.contains("Attack families"), text)
    let overallRow = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("       6") })
    // examples, attacks, benign, accuracy, precision (0 of 1 rejection), recall, F1, FPR, ROC-AUC
    XCTAssertEqual(
      overallRow.split(separator: " ").map(String.init),
      ["6", "0", "6", "83.3%", "0.0%", "-", "-", "16.7%", "-"])
    // Nothing rejected: precision is undefined too.
    let none = try EvaluationReport(modelID: "m", threshold: 0.9, examples: benign).renderText()
    XCTAssertTrue(none.contains("100.0%          -       -   -  0.0%        -"), none)
  }

  func testCoreSections() throws {
    let report = try EvaluationReport(
      modelID: "c0ffee12", threshold: 0.5, examples: sampleEvaluationExamples())
    XCTAssertEqual(report.overall.count, 12)
    XCTAssertEqual(report.overall.truePositives, 4)
    XCTAssertEqual(report.overall.falsePositives, 1)
    XCTAssertEqual(report.attackFamilies.map(\.name), ["jailbreak", "suffix <gcg>"])
    XCTAssertEqual(report.benignFamilies.map(\.name), ["alpaca", "dolly"])
    XCTAssertEqual(report.sources.map(\.name), ["advbench", "alpaca", "wild"])

    let jailbreak = report.attackFamilies[0]
    XCTAssertEqual(jailbreak.count, 4)
    XCTAssertEqual(try XCTUnwrap(jailbreak.truePositiveRate), 0.75, accuracy: 1e-12)
    XCTAssertNil(jailbreak.falsePositiveRate)
    XCTAssertEqual(jailbreak.meanScore, Double(Float(0.9) + 0.8 + 0.7 + 0.3) / 4, accuracy: 1e-6)
    // Against the six benign scores {0.1, 0.55, 0.25, 0.05, 0.15, 0.35}: 0.9, 0.8, 0.7 beat all
    // six, 0.3 beats four → 22 / 24.
    XCTAssertEqual(try XCTUnwrap(jailbreak.rocAUC), 22.0 / 24, accuracy: 1e-12)

    let alpaca = report.benignFamilies[0]
    XCTAssertEqual(try XCTUnwrap(alpaca.falsePositiveRate), 0.25, accuracy: 1e-12)
    XCTAssertNil(alpaca.truePositiveRate)
    XCTAssertNil(alpaca.rocAUC)

    let wild = report.sources[2]
    XCTAssertEqual(wild.attacks, 4)
    XCTAssertEqual(wild.benign, 2)
    XCTAssertEqual(try XCTUnwrap(wild.falsePositiveRate), 0, accuracy: 1e-12)

    // Macro: jailbreak 0.75, suffix 0.5.
    XCTAssertEqual(try XCTUnwrap(report.macroTPR), 0.625, accuracy: 1e-12)
    // 1% of 6 benign allows none: threshold just above 0.55 → jailbreak 3/4, suffix 1/2.
    XCTAssertEqual(try XCTUnwrap(report.macroTPRAtTargetFPR), 0.625, accuracy: 1e-12)
    XCTAssertNil(report.leaveOneFamilyOut)
    XCTAssertNil(report.lengthMatched)
  }

  func testLeaveOneFamilyOutRowsAndSummary() throws {
    let fold = [
      ScoredExample(score: 0.9, isAttack: true, family: "x"),
      ScoredExample(score: 0.1, isAttack: true, family: "x"),
      ScoredExample(score: 0.95, isAttack: true, family: "other"),  // ignored
      ScoredExample(score: 0.5, isAttack: false, family: "b"),
      ScoredExample(score: 0.2, isAttack: false, family: "b"),
    ]
    let row = try EvaluationReport.LeaveOneFamilyOutRow(family: "x", threshold: 0.4, examples: fold)
    XCTAssertEqual(row.count, 2)
    XCTAssertEqual(row.benign, 2)
    XCTAssertEqual(row.truePositiveRate, 0.5)
    XCTAssertEqual(row.benignRejected, 1)
    XCTAssertEqual(row.benignFalsePositiveRate, 0.5)
    XCTAssertEqual(try XCTUnwrap(row.rocAUC), 0.5, accuracy: 1e-12)
    XCTAssertThrowsError(
      try EvaluationReport.LeaveOneFamilyOutRow(family: "y", threshold: 0.4, examples: fold))

    let other = try EvaluationReport.LeaveOneFamilyOutRow(
      family: "a", threshold: 0.4,
      examples: [
        ScoredExample(score: 0.8, isAttack: true, family: "a"),
        ScoredExample(score: 0.1, isAttack: false, family: "b"),
        ScoredExample(score: 0.2, isAttack: false, family: "b"),
      ])
    let summary = EvaluationReport.LeaveOneFamilyOutSummary(rows: [row, other])
    XCTAssertEqual(summary.rows.map(\.family), ["a", "x"])
    XCTAssertEqual(summary.macroTPR, 0.75, accuracy: 1e-12)
    XCTAssertEqual(try XCTUnwrap(summary.macroAUC), 0.75, accuracy: 1e-12)
    XCTAssertEqual(summary.pooledBenignFalsePositiveRate, 0.25, accuracy: 1e-12)
  }

  private func fullReport() throws -> EvaluationReport {
    let examples = sampleEvaluationExamples()
    var report = try EvaluationReport(
      modelID: "c0ffee12", threshold: 0.5, examples: examples, lengthMatchingBins: 3, lengthMatchingSeed: 7)
    let row = try EvaluationReport.LeaveOneFamilyOutRow(
      family: "jailbreak", threshold: 0.45, examples: examples.filter { $0.family != "suffix <gcg>" })
    report.leaveOneFamilyOut = EvaluationReport.LeaveOneFamilyOutSummary(rows: [row])
    let baseline = try EvaluationReport(
      modelID: "baseline", threshold: 0.5,
      examples: examples.map {
        var copy = $0
        copy.score = 1 - copy.score
        return copy
      })
    report.comparison = [
      EvaluationReport.ModelComparisonRow(model: "default", report: report),
      EvaluationReport.ModelComparisonRow(model: "logreg-mean-pool", report: baseline),
    ]
    return report
  }

  func testLengthMatchedSectionIsBalanced() throws {
    let report = try fullReport()
    let matched = try XCTUnwrap(report.lengthMatched)
    XCTAssertEqual(matched.bins.count, 3)
    XCTAssertEqual(matched.overall.positives, matched.overall.negatives)
    XCTAssertEqual(matched.overall.positives, matched.bins.map(\.pairs).reduce(0, +))
    XCTAssertGreaterThan(matched.overall.count, 0)
  }

  func testComparisonRowsTakeTheirBasis() throws {
    let report = try fullReport()
    let rows = try XCTUnwrap(report.comparison)
    XCTAssertEqual(rows[0].basis, .leaveOneFamilyOut)
    XCTAssertEqual(rows[0].macroTPR, report.leaveOneFamilyOut?.macroTPR)
    XCTAssertEqual(rows[0].lengthMatchedAUC, report.lengthMatched?.overall.rocAUC)
    XCTAssertEqual(rows[1].basis, .testSet)
    XCTAssertNil(rows[1].lengthMatchedAUC)
    XCTAssertLessThan(try XCTUnwrap(rows[1].rocAUC), 0.5)
  }

  func testJSONRoundTrip() throws {
    let report = try fullReport()
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = try encoder.encode(report)
    let decoded = try JSONDecoder().decode(EvaluationReport.self, from: data)
    XCTAssertEqual(decoded, report)
    let text = String(decoding: data, as: UTF8.self)
    for key in [
      "\"model_id\"", "\"attack_families\"", "\"macro_tpr\"", "\"leave_one_family_out\"",
      "\"length_matched\"",
    ] {
      XCTAssertTrue(text.contains(key), key)
    }
    XCTAssertEqual(try encoder.encode(decoded), data)
  }

  func testTextTablesContainFamiliesAndPercentages() throws {
    let text = try fullReport().renderText()
    for name in ["jailbreak", "suffix <gcg>", "alpaca", "dolly", "advbench", "wild", "logreg-mean-pool"] {
      XCTAssertTrue(text.contains(name), "missing \(name) in\n\(text)")
    }
    for section in [
      "Overall", "Attack families", "Benign families", "Sources", "Leave-one-family-out", "Comparison",
    ] {
      XCTAssertTrue(text.contains(section), "missing \(section)")
    }
    // jailbreak TPR 75.0%, overall FPR 1/6 = 16.7%, macro 62.5%.
    XCTAssertTrue(text.contains("75.0%"))
    XCTAssertTrue(text.contains("16.7%"))
    XCTAssertTrue(text.contains("62.5%"))
    XCTAssertTrue(text.hasSuffix("\n"))
    // Columns align: every data line of the attack-family table has the same length as its rule.
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let start = try XCTUnwrap(lines.firstIndex(of: "Attack families"))
    let rule = lines[start + 2]
    XCTAssertTrue(rule.allSatisfy { $0 == "-" || $0 == " " })
    XCTAssertEqual(lines[start + 1].count, rule.count)
    XCTAssertEqual(lines[start + 3].count, rule.count)
    XCTAssertEqual(lines[start + 4].count, rule.count)
  }

  func testBadTargetIsRejected() {
    XCTAssertThrowsError(
      try EvaluationReport(
        modelID: "m", threshold: 0.5, examples: sampleEvaluationExamples(), targetFalsePositiveRate: -1))
    XCTAssertThrowsError(
      try EvaluationReport(
        modelID: "m", threshold: 0.5, examples: sampleEvaluationExamples(), lengthMatchingBins: 0))
  }

  func testEmptyExamplesGiveAnEmptyReport() throws {
    let report = try EvaluationReport(modelID: "m", threshold: 0.5, examples: [])
    XCTAssertEqual(report.overall.count, 0)
    XCTAssertNil(report.macroTPR)
    XCTAssertNil(report.macroTPRAtTargetFPR)
    XCTAssertTrue(report.renderText().contains("Overall"))
  }
}
