import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The element types a safetensors tensor may declare.
///
/// Every type of the format is recognised so that files holding integer tensors (e.g. BERT's
/// `position_ids`, I64) validate; only the floating-point types convert to `Float`.
public enum SafetensorsDType: String, Sendable, CaseIterable {
  /// IEEE 754 double precision, 8 bytes.
  case f64 = "F64"
  /// IEEE 754 single precision, 4 bytes.
  case f32 = "F32"
  /// IEEE 754 half precision, 2 bytes.
  case f16 = "F16"
  /// bfloat16 (the upper half of a single-precision value), 2 bytes.
  case bf16 = "BF16"
  /// Signed integers of 64, 32, 16 and 8 bits.
  case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
  /// Unsigned integers of 64, 32, 16 and 8 bits.
  case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
  /// Booleans, one byte each.
  case bool = "BOOL"

  /// The size of one element in bytes.
  public var byteCount: Int {
    switch self {
    case .f64, .i64, .u64: 8
    case .f32, .i32, .u32: 4
    case .f16, .bf16, .i16, .u16: 2
    case .i8, .u8, .bool: 1
    }
  }

  /// Whether `SafetensorsFile.floats(_:)` converts this type (F64, F32, F16, BF16).
  public var convertsToFloat: Bool {
    switch self {
    case .f64, .f32, .f16, .bf16: true
    default: false
    }
  }
}

/// Where one tensor lives in a safetensors file, and what it holds.
public struct SafetensorsTensorInfo: Sendable, Equatable {
  /// The tensor's name as written in the header.
  public let name: String
  /// The element type.
  public let dtype: SafetensorsDType
  /// The dimensions, outermost first (row-major); `[]` is a scalar.
  public let shape: [Int]
  /// The tensor's bytes as offsets from the start of the file (not of the data section).
  public let byteRange: Range<Int>

  /// The number of elements: the product of `shape` (1 for a scalar).
  public var elementCount: Int { shape.reduce(1, *) }

  /// Creates a description; the header parser checks that the parts agree.
  package init(name: String, dtype: SafetensorsDType, shape: [Int], byteRange: Range<Int>) {
    self.name = name
    self.dtype = dtype
    self.shape = shape
    self.byteRange = byteRange
  }
}

/// A safetensors file mapped read-only into memory, validated when opened.
///
/// The layout is an 8-byte little-endian header length `N`, then `N` bytes of UTF-8 JSON mapping
/// tensor names to `{"dtype", "shape", "data_offsets"}` (offsets counted from the first byte after
/// the header) plus an optional `"__metadata__"` object of strings, then the tensor data.
///
/// Opening checks the whole header before anything is trusted: size bounds, JSON shape, element
/// types, that every tensor's byte count matches its shape, that every range lies inside the data
/// section and that no two ranges overlap. Reads afterwards cannot leave the mapping.
///
/// Instances are immutable after `init` and may be shared between threads. The mapping is released
/// in `deinit`. The file must not be truncated by another process while it is open.
public final class SafetensorsFile: @unchecked Sendable {
  /// The file this instance maps.
  public let url: URL
  /// The header's `__metadata__` entries (empty when the header has none).
  public let metadata: [String: String]
  /// All tensor names, sorted.
  public let tensorNames: [String]

  private let tensors: [String: SafetensorsTensorInfo]
  private let base: UnsafeRawPointer
  private let mappedLength: Int

  /// The largest header this reader accepts, in bytes.
  package static let maximumHeaderLength = 100_000_000

  /// Maps and validates a safetensors file.
  ///
  /// - Parameter url: A local file URL.
  /// - Throws: `EmbeddingsError` with `.fileNotFound` or `.unreadable` when the file cannot be
  ///   opened or mapped, `.invalidHeader` when the length prefix, JSON or metadata is malformed,
  ///   `.invalidTensor` when an entry's shape, offsets or byte count is wrong, and
  ///   `.unsupportedDType` for an element type other than F32, F16 or BF16.
  public init(contentsOf url: URL) throws(EmbeddingsError) {
    let mapping = try Mapping(path: url.path)
    let header: Header
    do {
      header = try Header(
        file: UnsafeRawBufferPointer(start: mapping.base, count: mapping.length), path: url.path)
    } catch {
      mapping.unmap()
      throw error
    }
    self.url = url
    self.base = mapping.base
    self.mappedLength = mapping.length
    self.metadata = header.metadata
    self.tensors = header.tensors
    self.tensorNames = header.tensors.keys.sorted()
  }

  deinit {
    Mapping(base: base, length: mappedLength).unmap()
  }

  /// The description of one tensor, or `nil` when the file has no tensor of that name.
  public func info(_ name: String) -> SafetensorsTensorInfo? {
    tensors[name]
  }

  /// A tensor's values as `Float`s (F16 and BF16 are widened exactly).
  ///
  /// - Parameter name: The tensor's name.
  /// - Returns: `elementCount` values in the file's row-major order.
  /// - Throws: `EmbeddingsError` with `.missingTensor` when there is no such tensor and
  ///   `.unsupportedDType` when it holds integers or booleans.
  public func floats(_ name: String) throws(EmbeddingsError) -> [Float] {
    let info = try requireFloatInfo(name)
    return Self.decodeFloats(bytes(of: info), dtype: info.dtype, count: info.elementCount)
  }

  /// A tensor's values as `Float`s after checking that it has the expected shape.
  ///
  /// - Parameters:
  ///   - name: The tensor's name.
  ///   - shape: The shape the caller needs, e.g. `[vocabulary, hidden]`.
  /// - Returns: The product of `shape` values in row-major order.
  /// - Throws: `EmbeddingsError` with `.missingTensor`, `.shapeMismatch` or `.unsupportedDType`.
  public func floats(_ name: String, shape: [Int]) throws(EmbeddingsError) -> [Float] {
    let info = try requireFloatInfo(name)
    guard info.shape == shape else {
      throw EmbeddingsError(
        .shapeMismatch,
        "\(url.path): tensor '\(name)' has shape \(info.shape), expected \(shape)")
    }
    return Self.decodeFloats(bytes(of: info), dtype: info.dtype, count: info.elementCount)
  }

  /// Lends a tensor's raw little-endian bytes, as stored, to `body`.
  ///
  /// The buffer is valid only during the call and must not be written to.
  ///
  /// - Parameters:
  ///   - name: The tensor's name.
  ///   - body: Receives `elementCount × dtype.byteCount` bytes (no alignment is guaranteed).
  /// - Returns: What `body` returns.
  /// - Throws: `EmbeddingsError.Code.missingTensor`, or whatever `body` throws.
  public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    let info = try requireInfo(name)
    return try body(bytes(of: info))
  }

  private func requireInfo(_ name: String) throws(EmbeddingsError) -> SafetensorsTensorInfo {
    guard let info = tensors[name] else {
      throw EmbeddingsError(.missingTensor, "\(url.path): no tensor named '\(name)'")
    }
    return info
  }

  private func requireFloatInfo(_ name: String) throws(EmbeddingsError) -> SafetensorsTensorInfo {
    let info = try requireInfo(name)
    guard info.dtype.convertsToFloat else {
      throw EmbeddingsError(
        .unsupportedDType,
        "\(url.path): tensor '\(name)' is \(info.dtype.rawValue), not a floating-point type")
    }
    return info
  }

  private func bytes(of info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
    precondition(info.byteRange.upperBound <= mappedLength, "tensor range escaped the mapping")
    return UnsafeRawBufferPointer(start: base + info.byteRange.lowerBound, count: info.byteRange.count)
  }
}
