import LinearAlgebra

/// A dense, row-major tensor of `Float`: an explicit `shape` and its values stored contiguously.
///
/// The layers use two layouts:
/// - a batch of vectors `[batch, features]` (`Dense`, `BatchNorm`, losses);
/// - a batch of sequences `[batch, length, channels]` (`Conv1D`, `GlobalPooling`, `Flatten`), so
///   item `b`, position `t`, channel `c` lives at `storage[(b * length + t) * channels + c]`.
///   The `[L, d]` token matrix of one prompt is one batch item.
///
/// The first axis is always the batch. It is a value type backed by a Swift array (copy-on-write).
public struct Tensor: Sendable, Equatable {
  /// The size of each axis; their product is `storage.count`.
  public let shape: [Int]
  /// The values, row-major.
  public var storage: [Float]

  /// Wraps existing row-major values.
  /// - Precondition: every axis is ≥ 0 and `storage.count` equals the product of `shape`.
  public init(shape: [Int], storage: [Float]) {
    precondition(!shape.isEmpty && shape.allSatisfy { $0 >= 0 }, "bad tensor shape \(shape)")
    precondition(
      storage.count == shape.reduce(1, *), "\(storage.count) values for tensor shape \(shape)")
    self.shape = shape
    self.storage = storage
  }

  /// A tensor filled with one value.
  /// - Parameters:
  ///   - shape: The shape (every axis ≥ 0).
  ///   - value: The fill value.
  public init(shape: [Int], repeating value: Float = 0) {
    precondition(!shape.isEmpty && shape.allSatisfy { $0 >= 0 }, "bad tensor shape \(shape)")
    self.shape = shape
    self.storage = [Float](repeating: value, count: shape.reduce(1, *))
  }

  /// A `[rows, columns]` tensor with the matrix's values.
  public init(_ matrix: Matrix) {
    self.init(shape: [matrix.rows, matrix.columns], storage: matrix.storage)
  }

  /// Stacks equally shaped items along a new batch axis: `k` items of shape `s` give `[k] + s`.
  /// - Parameter items: The items (matrices `[L, d]` give `[k, L, d]`).
  /// - Throws: `NetworkError.invalidInput` if the items differ in shape or the list is empty.
  public init(stacking items: [Matrix]) throws(NetworkError) {
    guard let first = items.first else {
      throw NetworkError(.invalidInput, "cannot stack an empty list of matrices")
    }
    var storage = [Float]()
    storage.reserveCapacity(items.count * first.storage.count)
    for (index, item) in items.enumerated() {
      guard item.rows == first.rows, item.columns == first.columns else {
        throw NetworkError(
          .invalidInput,
          "item \(index) is [\(item.rows), \(item.columns)], item 0 is [\(first.rows), \(first.columns)]")
      }
      storage.append(contentsOf: item.storage)
    }
    self.init(shape: [items.count, first.rows, first.columns], storage: storage)
  }

  /// Number of values.
  public var count: Int { storage.count }

  /// Size of the first (batch) axis.
  public var batch: Int { shape[0] }

  /// Values per batch item (the product of all axes but the first).
  public var itemCount: Int { shape.dropFirst().reduce(1, *) }

  /// The same values with another shape of equal size.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    Tensor(shape: newShape, storage: storage)
  }

  /// The values as a `[batch, itemCount]` matrix.
  public var matrix: Matrix { Matrix(rows: batch, columns: itemCount, storage: storage) }

  /// Batch items `indices`, in that order: `[indices.count] + shape[1...]`.
  public func items(_ indices: some Collection<Int>) -> Tensor {
    let width = itemCount
    var values = [Float]()
    values.reserveCapacity(indices.count * width)
    for index in indices {
      precondition(index >= 0 && index < batch, "batch index \(index) out of range")
      values.append(contentsOf: storage[(index * width)..<((index + 1) * width)])
    }
    return Tensor(shape: [indices.count] + shape.dropFirst(), storage: values)
  }

  /// One item of a batch of sequences as a matrix, e.g. one prompt's convolution output.
  /// - Parameter index: The batch index.
  /// - Returns: `[length, channels]` for a `[batch, length, channels]` tensor.
  public func itemMatrix(_ index: Int) -> Matrix {
    precondition(shape.count == 3, "itemMatrix needs a [batch, length, channels] tensor, not \(shape)")
    precondition(index >= 0 && index < batch, "batch index \(index) out of range")
    let width = itemCount
    return Matrix(
      rows: shape[1], columns: shape[2], storage: Array(storage[(index * width)..<((index + 1) * width)]))
  }

  /// One batch item as a tensor of shape `shape[1...]` with a leading axis of 1.
  public func item(_ index: Int) -> Tensor { items(CollectionOfOne(index)) }
}
