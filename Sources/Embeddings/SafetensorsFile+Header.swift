import Foundation

extension SafetensorsFile {
  /// The validated contents of a safetensors header.
  struct Header {
    /// The `__metadata__` entries.
    let metadata: [String: String]
    /// Every tensor by name, with absolute byte ranges.
    let tensors: [String: SafetensorsTensorInfo]

    /// Parses and checks the header of a complete file image.
    ///
    /// - Parameters:
    ///   - file: The whole file, at least 8 bytes.
    ///   - path: The file's path, for messages.
    /// - Throws: `.invalidHeader`, `.invalidTensor` or `.unsupportedDType` naming the problem.
    init(file: UnsafeRawBufferPointer, path: String) throws(EmbeddingsError) {
      precondition(file.count >= 8, "the mapping checks the minimum size")
      let declared = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
      let available = UInt64(file.count - 8)
      guard declared <= UInt64(SafetensorsFile.maximumHeaderLength) else {
        throw EmbeddingsError(
          .invalidHeader,
          "\(path): header length \(declared) exceeds the limit of "
            + "\(SafetensorsFile.maximumHeaderLength) bytes")
      }
      guard declared <= available else {
        throw EmbeddingsError(
          .invalidHeader,
          "\(path): header length \(declared) exceeds the \(available) bytes after the length prefix")
      }
      let headerLength = Int(declared)
      let object = try Self.parseJSONObject(
        UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerLength)]), path: path)

      let dataStart = 8 + headerLength
      let dataLength = file.count - dataStart
      var metadata: [String: String] = [:]
      var tensors: [String: SafetensorsTensorInfo] = [:]
      for (key, value) in object {
        if key == "__metadata__" {
          metadata = try Self.parseMetadata(value, path: path)
        } else {
          tensors[key] = try Self.parseTensor(
            name: key, entry: value, dataStart: dataStart, dataLength: dataLength, path: path)
        }
      }
      try Self.checkNoOverlap(tensors.values, path: path)
      self.metadata = metadata
      self.tensors = tensors
    }

    private static func parseJSONObject(
      _ bytes: UnsafeRawBufferPointer, path: String
    ) throws(EmbeddingsError) -> [String: Any] {
      guard let text = String(validating: bytes, as: UTF8.self) else {
        throw EmbeddingsError(.invalidHeader, "\(path): header is not valid UTF-8")
      }
      let parsed: Any
      do {
        parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
      } catch {
        throw EmbeddingsError(.invalidHeader, "\(path): header is not valid JSON")
      }
      guard let object = parsed as? [String: Any] else {
        throw EmbeddingsError(.invalidHeader, "\(path): header JSON is not an object")
      }
      return object
    }

    private static func parseMetadata(_ value: Any, path: String) throws(EmbeddingsError) -> [String: String]
    {
      guard let entries = value as? [String: Any] else {
        throw EmbeddingsError(.invalidHeader, "\(path): __metadata__ is not a JSON object")
      }
      var metadata: [String: String] = [:]
      for (key, entry) in entries {
        guard let string = entry as? String else {
          throw EmbeddingsError(.invalidHeader, "\(path): __metadata__ value for '\(key)' is not a string")
        }
        metadata[key] = string
      }
      return metadata
    }

    private static func parseTensor(
      name: String, entry: Any, dataStart: Int, dataLength: Int, path: String
    ) throws(EmbeddingsError) -> SafetensorsTensorInfo {
      func invalid(_ problem: String) -> EmbeddingsError {
        EmbeddingsError(.invalidTensor, "\(path): tensor '\(name)': \(problem)")
      }
      guard let fields = entry as? [String: Any] else { throw invalid("entry is not a JSON object") }

      guard let dtypeName = fields["dtype"] as? String else {
        throw invalid("dtype is missing or not a string")
      }
      guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
        throw EmbeddingsError(
          .unsupportedDType,
          "\(path): tensor '\(name)': unknown dtype '\(dtypeName)'")
      }

      guard let shapeValues = fields["shape"] as? [Any] else {
        throw invalid("shape is missing or not an array")
      }
      var shape: [Int] = []
      shape.reserveCapacity(shapeValues.count)
      var elementCount = 1
      for value in shapeValues {
        guard let dimension = jsonInteger(value), dimension >= 0 else {
          throw invalid(
            "shape \(shapeDescription(shapeValues)) has an entry that is not a non-negative integer")
        }
        let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
        guard !overflow else { throw invalid("shape \(shape + [dimension]) has too many elements") }
        shape.append(dimension)
        elementCount = product
      }

      guard let offsetValues = fields["data_offsets"] as? [Any], offsetValues.count == 2,
        let begin = jsonInteger(offsetValues[0]), let end = jsonInteger(offsetValues[1]), begin >= 0
      else {
        throw invalid("data_offsets is not a pair of non-negative integers")
      }
      guard begin <= end else { throw invalid("data_offsets [\(begin), \(end)] end before they begin") }

      let (byteCount, overflow) = elementCount.multipliedReportingOverflow(by: dtype.byteCount)
      guard !overflow, byteCount == end - begin else {
        throw invalid(
          "data_offsets [\(begin), \(end)] span \(end - begin) bytes but shape \(shape) of "
            + "\(dtype.rawValue) needs \(overflow ? "more" : String(byteCount))")
      }
      guard end <= dataLength else {
        throw invalid(
          "data_offsets [\(begin), \(end)] reach beyond the \(dataLength)-byte data section "
            + "(file truncated?)")
      }
      return SafetensorsTensorInfo(
        name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin)..<(dataStart + end))
    }

    /// Throws when two non-empty tensors share a byte.
    private static func checkNoOverlap(
      _ tensors: some Collection<SafetensorsTensorInfo>, path: String
    ) throws(EmbeddingsError) {
      let ordered = tensors.filter { !$0.byteRange.isEmpty }.sorted {
        ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name)
          < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
      }
      for (previous, next) in zip(ordered, ordered.dropFirst())
      where previous.byteRange.upperBound > next.byteRange.lowerBound {
        throw EmbeddingsError(
          .invalidTensor, "\(path): tensors '\(previous.name)' and '\(next.name)' have overlapping data")
      }
    }

    /// A JSON number written as an integer that fits `Int`; `nil` for booleans, fractions, strings.
    private static func jsonInteger(_ value: Any) -> Int? {
      guard let number = value as? NSNumber else { return nil }
      // Booleans and floating-point literals also arrive as NSNumber: accept integer encodings only.
      guard let kind = String(validatingCString: number.objCType), integerKinds.contains(kind) else {
        return nil
      }
      return value as? Int
    }

    /// `objCType` codes of the integer encodings JSONSerialization produces.
    private static let integerKinds: Set<String> = ["s", "i", "l", "q", "S", "I", "L", "Q"]

    private static func shapeDescription(_ values: [Any]) -> String {
      "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
    }
  }
}
