import Embeddings
import Foundation
import TestSupport
import XCTest

/// Reading, writing and refusing safetensors files, with broken files made by hand.
final class SafetensorsTests: XCTestCase {
  private var directory: URL!

  override func setUpWithError() throws {
    directory = FileManager.default.temporaryDirectory
      .appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: directory)
  }

  // MARK: Helpers

  /// Writes `prefix(header.count) ‖ header ‖ data` and returns the file's URL.
  private func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) throws -> URL {
    let headerBytes = Array(header.utf8)
    var bytes: [UInt8] = []
    var length = (declaredLength ?? UInt64(headerBytes.count)).littleEndian
    withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
    bytes += headerBytes + data
    return try raw(bytes)
  }

  private func raw(_ bytes: [UInt8]) throws -> URL {
    let url = directory.appendingPathComponent("\(UUID().uuidString).safetensors")
    try Data(bytes).write(to: url)
    return url
  }

  private func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value -> [UInt8] in
      let bits = value.bitPattern.littleEndian
      return withUnsafeBytes(of: bits) { Array($0) }
    }
  }

  private func assertRefused(
    _ url: URL, _ code: EmbeddingsError.Code, containing fragment: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    do {
      _ = try SafetensorsFile(contentsOf: url)
      XCTFail("opened a broken file", file: file, line: line)
    } catch {
      XCTAssertEqual(error.code, code, error.message, file: file, line: line)
      XCTAssertTrue(
        error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", file: file, line: line)
      XCTAssertFalse(error.message.contains("\n"), "messages are one line", file: file, line: line)
    }
  }

  // MARK: Valid files

  func testRoundTripThroughWriterKeepsValuesShapesAndMetadata() throws {
    var generator = SeededGenerator(seed: 7)
    let a = (0..<12).map { _ in generator.uniform() }
    let b = (0..<5).map { _ in generator.uniform() }
    let url = directory.appendingPathComponent("round.safetensors")
    try SafetensorsWriter.write(
      [
        .init(name: "layer.weight", shape: [3, 4], values: a),
        .init(name: "bias", shape: [5], values: b),
        .init(name: "empty", shape: [0, 3], values: []),
        .init(name: "scalar", shape: [], values: [2.5]),
      ],
      metadata: ["format": "1", "note": "quote \" and\nnewline"], to: url)

    let file = try SafetensorsFile(contentsOf: url)
    XCTAssertEqual(file.tensorNames, ["bias", "empty", "layer.weight", "scalar"])
    XCTAssertEqual(file.metadata, ["format": "1", "note": "quote \" and\nnewline"])
    XCTAssertEqual(try file.floats("layer.weight", shape: [3, 4]), a)
    XCTAssertEqual(try file.floats("bias"), b)
    XCTAssertEqual(try file.floats("empty"), [])
    XCTAssertEqual(try file.floats("scalar", shape: []), [2.5])
    XCTAssertEqual(file.info("layer.weight")?.dtype, .f32)
    XCTAssertNil(file.info("absent"))
  }

  func testHalfBFloatDoubleAndIntegerTensors() throws {
    // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal) as F16; 1.0 and -0.5 as BF16.
    let half: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001]
    let bfloat: [UInt16] = [0x3F80, 0xBF00]
    var data: [UInt8] = []
    for value in half + bfloat { data += [UInt8(value & 0xFF), UInt8(value >> 8)] }
    let double = withUnsafeBytes(of: (0.25 as Double).bitPattern.littleEndian) { Array($0) }
    data += double
    data += [1, 0, 0, 0, 0, 0, 0, 0]
    let header = """
      {"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},\
      "b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},\
      "d":{"dtype":"F64","shape":[1],"data_offsets":[12,20]},\
      "ids":{"dtype":"I64","shape":[1,1],"data_offsets":[20,28]}}
      """
    let file = try SafetensorsFile(contentsOf: try self.file(header: header, data: data))
    XCTAssertEqual(try file.floats("h"), [1, -2, 65504, 0x1p-24])
    XCTAssertEqual(try file.floats("b"), [1, -0.5])
    XCTAssertEqual(try file.floats("d"), [0.25])
    XCTAssertEqual(file.info("ids")?.dtype, .i64)
    XCTAssertThrowsError(try file.floats("ids")) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .unsupportedDType)
    }
    let raw = try file.withRawBytes("ids") { Array($0) }
    XCTAssertEqual(raw, [1, 0, 0, 0, 0, 0, 0, 0])
  }

  func testMissingTensorAndWrongShapeAreErrors() throws {
    let url = try file(
      header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: floatBytes([1, 2]))
    let file = try SafetensorsFile(contentsOf: url)
    XCTAssertThrowsError(try file.floats("v")) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .missingTensor)
    }
    XCTAssertThrowsError(try file.floats("w", shape: [1, 2])) { error in
      XCTAssertEqual((error as? EmbeddingsError)?.code, .shapeMismatch)
    }
  }

  // MARK: Broken files

  func testMissingAndShortFiles() throws {
    assertRefused(directory.appendingPathComponent("nope.safetensors"), .fileNotFound, containing: "nope")
    assertRefused(try raw([]), .invalidHeader, containing: "shorter than")
    assertRefused(try raw([1, 2, 3]), .invalidHeader, containing: "shorter than")
    assertRefused(directory, .unreadable, containing: "not a regular file")
  }

  func testHeaderLengthBounds() throws {
    assertRefused(
      try file(header: "{}", declaredLength: 1 << 40), .invalidHeader, containing: "exceeds the limit")
    assertRefused(
      try file(header: "{}", declaredLength: 50), .invalidHeader, containing: "exceeds the 2 bytes")
  }

  func testHeaderMustBeUTF8JSONObject() throws {
    assertRefused(try file(header: "{\"a\": [1,"), .invalidHeader, containing: "not valid JSON")
    assertRefused(try file(header: "[1, 2]"), .invalidHeader, containing: "not an object")
    var bytes: [UInt8] = [4, 0, 0, 0, 0, 0, 0, 0]
    bytes += [0x7B, 0xFF, 0xFE, 0x7D]
    assertRefused(try raw(bytes), .invalidHeader, containing: "UTF-8")
    assertRefused(
      try file(header: #"{"__metadata__":{"a":1}}"#), .invalidHeader, containing: "not a string")
  }

  func testTensorEntriesAreChecked() throws {
    let data = floatBytes([1, 2, 3, 4])
    let cases: [(String, EmbeddingsError.Code, String)] = [
      (#"{"w":{"dtype":"Q8","shape":[4],"data_offsets":[0,16]}}"#, .unsupportedDType, "unknown dtype"),
      (#"{"w":{"shape":[4],"data_offsets":[0,16]}}"#, .invalidTensor, "dtype is missing"),
      (#"{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, .invalidTensor, "non-negative"),
      (#"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,16]}}"#, .invalidTensor, "non-negative"),
      (#"{"w":{"dtype":"F32","shape":[4]}}"#, .invalidTensor, "data_offsets"),
      (#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}}"#, .invalidTensor, "end before"),
      (#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, .invalidTensor, "needs 12"),
      (#"{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"#, .invalidTensor, "beyond"),
      (
        #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#,
        .invalidTensor, "too many"
      ),
      (
        #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
        .invalidTensor, "overlapping"
      ),
      (#"{"w":[1,2]}"#, .invalidTensor, "not a JSON object"),
    ]
    for (header, code, fragment) in cases {
      assertRefused(try file(header: header, data: data), code, containing: fragment)
    }
  }

  func testTruncatedCopyOfAValidFileIsRefused() throws {
    let url = directory.appendingPathComponent("whole.safetensors")
    try SafetensorsWriter.write(
      [.init(name: "w", shape: [64], values: [Float](repeating: 1, count: 64))], metadata: [:], to: url)
    let bytes = try [UInt8](Data(contentsOf: url))
    for cut in [bytes.count - 1, bytes.count - 100, 12] {
      let truncated = try raw(Array(bytes.prefix(cut)))
      if cut == 12 {
        assertRefused(truncated, .invalidHeader, containing: "exceeds")
      } else {
        assertRefused(truncated, .invalidTensor, containing: "truncated")
      }
    }
  }

  func testWriterRejectsBadTensorsAndLeavesNoFile() throws {
    let url = directory.appendingPathComponent("bad.safetensors")
    let bad: [[SafetensorsWriter.Tensor]] = [
      [.init(name: "a", shape: [2], values: [1])],
      [.init(name: "a", shape: [1], values: [1]), .init(name: "a", shape: [1], values: [2])],
      [.init(name: "__metadata__", shape: [1], values: [1])],
      [.init(name: "a", shape: [-1], values: [])],
    ]
    for tensors in bad {
      XCTAssertThrowsError(try SafetensorsWriter.write(tensors, metadata: [:], to: url)) { error in
        XCTAssertEqual((error as? EmbeddingsError)?.code, .invalidInput)
      }
    }
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
  }
}
