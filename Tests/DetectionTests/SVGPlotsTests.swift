import Detection
import Foundation
import TestSupport
import XCTest

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// Parses XML and collects elements' attributes and all character data.
private final class XMLCollector: NSObject, XMLParserDelegate {
  var elements: [(name: String, attributes: [String: String])] = []
  var characters = ""

  func parser(
    _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
    attributes: [String: String] = [:]
  ) {
    elements.append((elementName, attributes))
  }

  func parser(_ parser: XMLParser, foundCharacters string: String) {
    characters += string
  }

  /// Parses `text`; fails the test when it is not well-formed XML.
  static func parse(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> XMLCollector {
    let collector = XMLCollector()
    let parser = XMLParser(data: Data(text.utf8))
    parser.delegate = collector
    let ok = parser.parse()
    XCTAssertTrue(
      ok, "not well-formed XML: \(String(describing: parser.parserError))", file: file, line: line)
    return collector
  }
}

final class SVGPlotsTests: XCTestCase {
  func testROCCurveParsesAndMarksTheOperatingPoint() throws {
    let examples = sampleEvaluationExamples()
    let svg = try XCTUnwrap(SVGPlots.rocCurve(examples, threshold: 0.5, modelID: "c0ffee12"))
    let xml = XMLCollector.parse(svg)
    XCTAssertEqual(xml.elements.first?.name, "svg")
    let auc = try XCTUnwrap(Metrics.rocAUC(examples))
    XCTAssertTrue(xml.characters.contains("AUC \(String(format: "%.3f", auc))"), xml.characters)
    // At 0.5: TPR 4/6, FPR 1/6; linear panel is 380 px square at (70, 60).
    let point = try XCTUnwrap(xml.elements.first { $0.attributes["id"] == "operating-point" })
    XCTAssertEqual(try XCTUnwrap(Double(point.attributes["cx"] ?? "")), 70 + 380.0 / 6, accuracy: 0.06)
    XCTAssertEqual(try XCTUnwrap(Double(point.attributes["cy"] ?? "")), 60 + 380.0 / 3, accuracy: 0.06)
    XCTAssertTrue(xml.elements.contains { $0.attributes["id"] == "operating-point-log" })
    XCTAssertTrue(xml.characters.contains("TPR 66.7% at FPR 16.7%"), xml.characters)
    XCTAssertEqual(xml.elements.filter { $0.name == "polyline" }.count, 2)
  }

  func testROCCurveNeedsBothClasses() {
    let attacksOnly = sampleEvaluationExamples().filter(\.isAttack)
    XCTAssertNil(SVGPlots.rocCurve(attacksOnly, threshold: 0.5, modelID: "m"))
  }

  func testScoreDistributionsEscapeLabelsAndShowTheThreshold() {
    let svg = SVGPlots.scoreDistributions(sampleEvaluationExamples(), threshold: 0.5, modelID: "m")
    XCTAssertTrue(svg.contains("suffix &lt;gcg&gt; (2)"))
    let xml = XMLCollector.parse(svg)
    XCTAssertTrue(xml.characters.contains("suffix <gcg> (2)"))
    for family in ["jailbreak (4)", "alpaca (4)", "dolly (2)"] {
      XCTAssertTrue(xml.characters.contains(family), family)
    }
    let line = xml.elements.first { $0.attributes["id"] == "threshold" }
    XCTAssertEqual(line?.attributes["x1"], "530.0")  // 230 + 0.5 × 600 on the [0, 1] axis.
  }

  func testFeatureDistributions() throws {
    let examples = sampleEvaluationExamples()
    for feature in SVGPlots.referenceFeatures {
      let svg = try XCTUnwrap(SVGPlots.featureDistributions(examples, feature: feature, modelID: "m"))
      let xml = XMLCollector.parse(svg)
      XCTAssertTrue(xml.characters.contains("\(feature) by family"))
      XCTAssertTrue(xml.characters.contains("jailbreak (4)"))
    }
    XCTAssertNil(SVGPlots.featureDistributions(examples, feature: "missing", modelID: "m"))
  }

  func testHostileLabelsStayWellFormed() {
    let examples = [
      ScoredExample(score: 0.9, isAttack: true, family: "a&b <x> \"q\" 'y' \u{1}\u{FFFE}end"),
      ScoredExample(score: 0.1, isAttack: false, family: "]]> <!-- -->"),
      ScoredExample(score: .nan, isAttack: false, family: "nan"),
    ]
    let xml = XMLCollector.parse(SVGPlots.scoreDistributions(examples, threshold: 0.5, modelID: "<m&>"))
    XCTAssertTrue(xml.characters.contains("a&b <x> \"q\" 'y' end"), xml.characters)
    XCTAssertTrue(xml.characters.contains("]]> <!-- -->"))
    XCTAssertTrue(xml.characters.contains("<m&>"))
    XCTAssertNotNil(
      SVGPlots.rocCurve(examples, threshold: 0.5, modelID: "<m&>").map { XMLCollector.parse($0) })
  }

  func testOutputIsDeterministicAndOrderIndependent() throws {
    var examples = sampleEvaluationExamples()
    let first = SVGPlots.scoreDistributions(examples, threshold: 0.5, modelID: "m")
    let roc = SVGPlots.rocCurve(examples, threshold: 0.5, modelID: "m")
    var rng = SeededGenerator(seed: 1)
    examples.shuffle(using: &rng)
    XCTAssertEqual(SVGPlots.scoreDistributions(examples, threshold: 0.5, modelID: "m"), first)
    XCTAssertEqual(SVGPlots.rocCurve(examples, threshold: 0.5, modelID: "m"), roc)
  }

  func testManyPointsAreThinned() {
    var rng = SeededGenerator(seed: 2)
    let examples = (0..<5000).map { i in
      ScoredExample(score: rng.uniform(0...1), isAttack: i % 2 == 0, family: i % 2 == 0 ? "a" : "b")
    }
    let svg = SVGPlots.scoreDistributions(examples, threshold: 0.5, modelID: "m")
    XCTAssertLessThan(svg.utf8.count, 60_000)
    _ = XMLCollector.parse(svg)
  }

  func testWriteAllWritesEveryFigure() throws {
    let directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("curvalid-plots-\(UUID().uuidString)")
      .appendingPathComponent("nested")
    defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
    let written = try SVGPlots.writeAll(
      sampleEvaluationExamples(), threshold: 0.5, modelID: "m", to: directory)
    XCTAssertEqual(
      written.map(\.lastPathComponent),
      [
        "roc.svg", "score_by_family.svg", "feature_curvature_conv1.svg", "feature_curvature_conv2.svg",
        "feature_prompt_lid.svg",
      ])
    for url in written {
      let text = try String(contentsOf: url, encoding: .utf8)
      _ = XMLCollector.parse(text)
    }
    let chosen = try SVGPlots.writeAll(
      sampleEvaluationExamples(), threshold: 0.5, modelID: "m", features: ["prompt_lid", "a/b"], to: directory
    )
    XCTAssertEqual(
      chosen.map(\.lastPathComponent), ["roc.svg", "score_by_family.svg", "feature_prompt_lid.svg"])
  }

  func testWriteAllReportsIOErrors() throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent(
      "curvalid-plots-\(UUID().uuidString)")
    try Data("x".utf8).write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    XCTAssertThrowsError(
      try SVGPlots.writeAll(sampleEvaluationExamples(), threshold: 0.5, modelID: "m", to: file)
    ) {
      XCTAssertEqual(($0 as? DetectionError)?.code, .io)
    }
  }
}
