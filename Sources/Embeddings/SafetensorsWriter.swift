import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writes `Float` tensors and string metadata as a safetensors file that `SafetensorsFile` reads.
public enum SafetensorsWriter {
  /// One tensor to write, stored as F32.
  public struct Tensor: Sendable {
    /// The tensor's name; must be unique and not `__metadata__`.
    public var name: String
    /// The dimensions, outermost first; their product must equal `values.count`.
    public var shape: [Int]
    /// The values in row-major order.
    public var values: [Float]

    /// Creates a tensor to write.
    ///
    /// - Parameters:
    ///   - name: The tensor's name.
    ///   - shape: The dimensions, e.g. `[rows, columns]`; `[]` for a scalar.
    ///   - values: The row-major values.
    public init(name: String, shape: [Int], values: [Float]) {
      self.name = name
      self.shape = shape
      self.values = values
    }
  }

  /// Writes a safetensors file atomically: to a temporary file beside `url`, then renamed over it.
  ///
  /// Header keys are sorted, tensor data follows in the same order without gaps, and the header is
  /// padded with spaces to a multiple of 8 bytes. An empty `metadata` writes no `__metadata__` key.
  ///
  /// - Parameters:
  ///   - tensors: The tensors, in any order.
  ///   - metadata: String entries for `__metadata__`.
  ///   - url: The destination file URL; its directory must exist.
  /// - Throws: `EmbeddingsError` with `.invalidInput` for duplicate or reserved names, negative
  ///   dimensions or a value count that does not match a shape; `.fileNotFound` or `.unreadable`
  ///   (with the system's reason) when the file cannot be written.
  public static func write(
    _ tensors: [Tensor], metadata: [String: String], to url: URL
  ) throws(EmbeddingsError) {
    let path = url.path
    let ordered = tensors.sorted { $0.name < $1.name }
    try validate(ordered, path: path)
    let header = headerBytes(for: ordered, metadata: metadata)

    let directory = url.deletingLastPathComponent().path
    let temporaryPath = directory + "/." + url.lastPathComponent + "." + UUID().uuidString + ".tmp"
    let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw SafetensorsFile.systemError("cannot create temporary file \(temporaryPath)", path, errno)
    }
    var closed = false
    var renamed = false
    defer {
      if !closed { _ = close(descriptor) }
      if !renamed { _ = unlink(temporaryPath) }
    }

    var lengthPrefix = UInt64(header.count).littleEndian
    try withUnsafeBytes(of: &lengthPrefix) { prefix throws(EmbeddingsError) in
      try writeAll(prefix, to: descriptor, path: temporaryPath)
    }
    try writeAll(header, to: descriptor, path: temporaryPath)
    for tensor in ordered {
      try writeLittleEndian(tensor.values, to: descriptor, path: temporaryPath)
    }
    guard fsync(descriptor) == 0 else {
      throw SafetensorsFile.systemError("cannot flush", temporaryPath, errno)
    }
    closed = true
    guard close(descriptor) == 0 else {
      throw SafetensorsFile.systemError("cannot close", temporaryPath, errno)
    }
    guard rename(temporaryPath, path) == 0 else {
      throw SafetensorsFile.systemError("cannot rename \(temporaryPath) to", path, errno)
    }
    renamed = true
  }

  private static func validate(_ ordered: [Tensor], path: String) throws(EmbeddingsError) {
    for (previous, next) in zip(ordered, ordered.dropFirst()) where previous.name == next.name {
      throw EmbeddingsError(.invalidInput, "\(path): tensor name '\(next.name)' is used twice")
    }
    for tensor in ordered {
      guard tensor.name != "__metadata__" else {
        throw EmbeddingsError(.invalidInput, "\(path): '__metadata__' is reserved and cannot name a tensor")
      }
      var count = 1
      for dimension in tensor.shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard dimension >= 0, !overflow else {
          throw EmbeddingsError(
            .invalidInput, "\(path): tensor '\(tensor.name)' has invalid shape \(tensor.shape)")
        }
        count = product
      }
      guard count == tensor.values.count else {
        throw EmbeddingsError(
          .invalidInput,
          "\(path): tensor '\(tensor.name)' has \(tensor.values.count) values but shape \(tensor.shape) "
            + "needs \(count)")
      }
    }
  }

  /// The UTF-8 JSON header, keys sorted, space-padded to a multiple of 8 bytes.
  private static func headerBytes(for ordered: [Tensor], metadata: [String: String]) -> [UInt8] {
    var entries: [(key: String, json: String)] = []
    if !metadata.isEmpty {
      let fields = metadata.keys.sorted().map { key in
        jsonString(key) + ":" + jsonString(metadata[key] ?? "")
      }
      entries.append((key: "__metadata__", json: "{" + fields.joined(separator: ",") + "}"))
    }
    var offset = 0
    for tensor in ordered {
      let end = offset + 4 * tensor.values.count
      let shape = tensor.shape.map(String.init).joined(separator: ",")
      entries.append(
        (
          key: tensor.name,
          json: #"{"dtype":"F32","shape":["# + shape + #"],"data_offsets":["# + "\(offset),\(end)]}"
        ))
      offset = end
    }
    entries.sort { $0.key < $1.key }
    let json = "{" + entries.map { jsonString($0.key) + ":" + $0.json }.joined(separator: ",") + "}"
    var bytes = Array(json.utf8)
    let padding = (8 - bytes.count % 8) % 8
    bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
    return bytes
  }

  /// `text` as a JSON string literal (quotes, backslashes and control characters escaped).
  private static func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": result += "\\\""
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\r": result += "\\r"
      case "\t": result += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: result.unicodeScalars.append(scalar)
      }
    }
    return result + "\""
  }

  private static func writeLittleEndian(
    _ values: [Float], to descriptor: Int32, path: String
  ) throws(EmbeddingsError) {
    #if _endian(little)
      try writeAll(values, to: descriptor, path: path)
    #else
      try writeAll(values.map { $0.bitPattern.littleEndian }, to: descriptor, path: path)
    #endif
  }

  /// Writes an array's bytes in memory order.
  private static func writeAll<Element: BitwiseCopyable>(
    _ array: [Element], to descriptor: Int32, path: String
  ) throws(EmbeddingsError) {
    let result = array.withUnsafeBytes { bytes in
      Result { () throws(EmbeddingsError) in try writeAll(bytes, to: descriptor, path: path) }
    }
    try result.get()
  }

  /// Writes every byte, retrying interrupted and partial writes.
  private static func writeAll(
    _ bytes: UnsafeRawBufferPointer, to descriptor: Int32, path: String
  ) throws(EmbeddingsError) {
    guard var next = bytes.baseAddress else { return }
    var remaining = bytes.count
    while remaining > 0 {
      let written = systemWrite(descriptor, next, remaining)
      if written < 0 {
        if errno == EINTR { continue }
        throw SafetensorsFile.systemError("cannot write", path, errno)
      }
      next += written
      remaining -= written
    }
  }
}

/// The C library's `write(2)`, named apart from `SafetensorsWriter.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
  write(descriptor, bytes, count)
}
