import Detection
import Foundation
import TestSupport
import XCTest

/// `classifier.members`: several classifiers on the same features, their logits averaged.
final class ClassifierEnsembleTests: XCTestCase {
  func testMembersAreValidatedAndStoredOnlyWhenSet() throws {
    let plain = try DetectionFixture.configuration()
    XCTAssertNil(plain.classifier.members)
    XCTAssertEqual(plain.classifier.memberCount, 1)
    XCTAssertFalse(plain.json().contains("members"), "a configuration without members keeps its JSON")
    var three = plain
    try three.apply("classifier.members=3")
    try three.validate()
    XCTAssertEqual(three.classifier.memberCount, 3)
    XCTAssertTrue(three.json().contains("\"members\":3"))
    XCTAssertEqual(try DetectorConfiguration.fromJSON(three.json()), three)
    var one = three
    try one.apply("classifier.members=1")
    XCTAssertEqual(one, plain, "one member is stored as no members field")
    XCTAssertEqual(one.json(), plain.json())
    for bad in ["0", "17"] {
      var wrong = plain
      XCTAssertThrowsError(try wrong.apply("classifier.members=\(bad)")) { error in
        XCTAssertTrue("\(error)".contains("classifier.members in 1…16"), "\(error)")
      }
    }
  }

  func testMembersTrainApartStoreTheirOwnTensorsAndRoundTrip() throws {
    let directory = try DetectionFixture.temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let single = try DetectionFixture.configuration()
    var ensemble = single
    try ensemble.apply("classifier.members=3")
    let (one, _) = try DetectionFixture.train(single, cache: nil)
    let (three, provider) = try DetectionFixture.train(ensemble, cache: nil)

    let names = one.bundle.model.classifier.tensors.map(\.name)
    XCTAssertTrue(names.allSatisfy { $0.hasPrefix("classifier.") && !$0.hasPrefix("classifier.member") })
    let members = three.bundle.model.classifier.tensors
    XCTAssertEqual(members.count, 3 * names.count)
    for index in 1...3 {
      let expected = names.map { "classifier.member\(index)." + $0.dropFirst("classifier.".count) }
      let slice = members[((index - 1) * names.count)..<(index * names.count)]
      XCTAssertEqual(slice.map(\.name), expected)
    }
    // The first member draws what a single classifier draws, so it is that classifier; the others
    // come from later draws and differ from it.
    XCTAssertEqual(
      members.prefix(names.count).map(\.values), one.bundle.model.classifier.tensors.map(\.values))
    XCTAssertNotEqual(members[names.count].values, members[0].values)
    // The threshold is calibrated on the average, which is not the first member's score.
    XCTAssertNotEqual(three.bundle.threshold, one.bundle.threshold)
    XCTAssertGreaterThan(DetectionFixture.auc(three.testExamples), 0.8)

    let url = directory.appendingPathComponent("ensemble.safetensors")
    try DetectionFixture.assertBundleReproducesTestScores(three, provider: provider, url: url)
    try DetectionFixture.assertRefusedWithout(tensor: "classifier.member3.output.bias", bundle: url)
  }
}
