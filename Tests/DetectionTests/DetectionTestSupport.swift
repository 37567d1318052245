import Detection
import Embeddings
import Foundation
import TestSupport
import XCTest

/// The tiny fixture set-up shared by the detection tests.
enum DetectionFixture {
  static let encoderDirectory = Fixtures.url("encoder/tiny-bert")
  static let corpusURL = Fixtures.url("detection/corpus.jsonl")

  static func encoder() throws -> TextEncoder { try TextEncoder(directory: encoderDirectory) }

  static func identity() throws -> EncoderIdentity {
    EncoderIdentity(
      name: "tiny-bert", sha256: try EncoderStore(directory: encoderDirectory).verify(expectedSHA256: nil))
  }

  static func corpus() throws -> Corpus { try Corpus(contentsOf: [corpusURL]) }

  /// The reference preset shrunk to the fixture's size.
  static func configuration(preset: String = "reference") throws -> DetectorConfiguration {
    var configuration = try DetectorConfiguration.preset(named: preset)
    for assignment in [
      "featureNetwork.length=16", "featureNetwork.epochs=40", "featureNetwork.batchSize=16",
      "featureNetwork.filters1=8", "featureNetwork.filters2=8", "featureNetwork.dense=16", "lidK=8",
      "classifier.hidden=32,16", "classifier.epochs=200", "classifier.batchSize=16", "classifier.patience=40",
      "classifier.dropout=0.1", "classifier.learningRate=0.01", "targetFalsePositiveRate=0.05",
    ] {
      try configuration.apply(assignment)
    }
    return configuration
  }

  static func temporaryDirectory() throws -> URL {
    try makeTemporaryDirectory(prefix: "curvalid-detection")
  }

  static func train(
    _ configuration: DetectorConfiguration, cache: URL?, excluding: Set<String> = [], corpus: Corpus? = nil
  ) throws -> (TrainingResult, EmbeddingProvider) {
    let provider = EmbeddingProvider(
      encoder: try encoder(), cache: cache.map(EmbeddingCache.init(directory:)),
      maxWindows: configuration.maxWindows)
    let result = try DetectorTraining.train(
      corpus: try corpus ?? Self.corpus(), configuration: configuration, embeddings: provider,
      encoder: try identity(),
      excludingFamilies: excluding)
    return (result, provider)
  }

  /// Writes `result`'s bundle to `url`, loads it as a `Detector` and checks that it scores the
  /// fixture's test split as training did (within `accuracy`).
  static func assertBundleReproducesTestScores(
    _ result: TrainingResult, provider: EmbeddingProvider, url: URL, accuracy: Float = 2e-3,
    corpus: Corpus? = nil, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    try result.bundle.write(to: url)
    let detector = try Detector(
      contentsOf: url, encoder: provider.encoder, encoderSHA256: try identity().sha256)
    let corpus = try corpus ?? Self.corpus()
    let test = corpus.select(splits: [.test], labels: [.benign, .adversarial])
    let decisions = detector.score(test.map { corpus.records[$0].text }, explain: false)
    XCTAssertEqual(decisions.count, result.testExamples.count, file: file, line: line)
    for (decision, example) in zip(decisions, result.testExamples) {
      XCTAssertEqual(try decision.get().score, example.score, accuracy: accuracy, file: file, line: line)
    }
  }

  /// Writes the bundle at `url` without the tensor `name` and checks that loading it is refused
  /// with `.invalidBundle`, naming the tensor.
  static func assertRefusedWithout(
    tensor name: String, bundle url: URL, file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let stored = try SafetensorsFile(contentsOf: url)
    var tensors: [SafetensorsWriter.Tensor] = []
    for other in stored.tensorNames where other != name {
      tensors.append(
        .init(name: other, shape: stored.info(other)?.shape ?? [], values: try stored.floats(other)))
    }
    let stripped = url.deletingLastPathComponent().appendingPathComponent(
      "stripped-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: stripped) }
    try SafetensorsWriter.write(tensors, metadata: stored.metadata, to: stripped)
    XCTAssertThrowsError(try ModelBundle.read(from: stripped, encoderSHA256: nil), file: file, line: line) {
      error in
      XCTAssertEqual((error as? DetectionError)?.code, .invalidBundle, file: file, line: line)
      XCTAssertTrue("\(error)".contains(name), "\(error)", file: file, line: line)
    }
  }

  /// ROC-AUC of scored examples.
  static func auc(_ examples: [ScoredExample]) -> Double {
    let positives = examples.filter(\.isAttack).map(\.score)
    let negatives = examples.filter { !$0.isAttack }.map(\.score)
    var total = 0.0
    for p in positives {
      for n in negatives { total += p > n ? 1 : (p == n ? 0.5 : 0) }
    }
    return total / Double(positives.count * negatives.count)
  }
}
