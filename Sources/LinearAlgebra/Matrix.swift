/// A dense, row-major matrix of `Float`: `rows × columns` values stored contiguously.
///
/// `Matrix` is the tensor type every module of curvalid exchanges. Element `(r, c)` lives at
/// `storage[r * columns + c]`. It is a value type backed by a Swift array, so copies are cheap until
/// one of them is mutated (copy-on-write).
public struct Matrix: Sendable, Equatable {
  /// Number of rows.
  public let rows: Int
  /// Number of columns (the stride between consecutive rows).
  public let columns: Int
  /// The values, row after row: `rows * columns` elements.
  public var storage: [Float]

  /// Creates a matrix filled with one value.
  /// - Parameters:
  ///   - rows: Number of rows (≥ 0).
  ///   - columns: Number of columns (≥ 0).
  ///   - value: The fill value.
  public init(rows: Int, columns: Int, repeating value: Float = 0) {
    precondition(rows >= 0 && columns >= 0, "Matrix shape must be non-negative")
    self.rows = rows
    self.columns = columns
    self.storage = [Float](repeating: value, count: rows * columns)
  }

  /// Wraps existing row-major values.
  /// - Precondition: `storage.count == rows * columns`.
  public init(rows: Int, columns: Int, storage: [Float]) {
    precondition(rows >= 0 && columns >= 0, "Matrix shape must be non-negative")
    precondition(
      storage.count == rows * columns, "storage has \(storage.count) values, shape needs \(rows * columns)")
    self.rows = rows
    self.columns = columns
    self.storage = storage
  }

  /// Builds a matrix from nested rows, all of equal length (convenient in tests).
  public init(_ nested: [[Float]]) {
    let columns = nested.first?.count ?? 0
    precondition(nested.allSatisfy { $0.count == columns }, "rows differ in length")
    self.init(rows: nested.count, columns: columns, storage: nested.flatMap { $0 })
  }

  /// The `(rows, columns)` pair.
  public var shape: (rows: Int, columns: Int) { (rows, columns) }

  /// Element access by row and column.
  public subscript(row: Int, column: Int) -> Float {
    get {
      precondition(row >= 0 && row < rows && column >= 0 && column < columns, "index out of range")
      return storage[row * columns + column]
    }
    set {
      precondition(row >= 0 && row < rows && column >= 0 && column < columns, "index out of range")
      storage[row * columns + column] = newValue
    }
  }

  /// A copy of one row: `[columns]`.
  public func row(_ index: Int) -> [Float] {
    precondition(index >= 0 && index < rows, "row out of range")
    return Array(storage[(index * columns)..<((index + 1) * columns)])
  }

  /// A copy of rows `range`: `[range.count, columns]`.
  public func rows(_ range: Range<Int>) -> Matrix {
    precondition(range.lowerBound >= 0 && range.upperBound <= rows, "row range out of bounds")
    return Matrix(
      rows: range.count, columns: columns,
      storage: Array(storage[(range.lowerBound * columns)..<(range.upperBound * columns)]))
  }

  /// The sum of each column over all rows: `[columns]` (zeros for a matrix without rows).
  public func columnSums() -> [Float] {
    var sums = [Float](repeating: 0, count: columns)
    storage.withUnsafeBufferPointer { source in
      for r in 0..<rows {
        for c in 0..<columns { sums[c] += source[r * columns + c] }
      }
    }
    return sums
  }

  /// Stacks matrices with the same column count on top of each other.
  public static func concatenatingRows(_ parts: [Matrix]) -> Matrix {
    guard let first = parts.first else { return Matrix(rows: 0, columns: 0) }
    precondition(parts.allSatisfy { $0.columns == first.columns }, "column counts differ")
    var storage = [Float]()
    storage.reserveCapacity(parts.reduce(0) { $0 + $1.storage.count })
    for part in parts { storage.append(contentsOf: part.storage) }
    return Matrix(rows: parts.reduce(0) { $0 + $1.rows }, columns: first.columns, storage: storage)
  }

  /// The transpose: `[columns, rows]`.
  public func transposed() -> Matrix {
    var result = Matrix(rows: columns, columns: rows)
    storage.withUnsafeBufferPointer { source in
      result.storage.withUnsafeMutableBufferPointer { target in
        for r in 0..<rows {
          for c in 0..<columns { target[c * rows + r] = source[r * columns + c] }
        }
      }
    }
    return result
  }
}
