import LinearAlgebra

/// Exact k-nearest-neighbour search (Euclidean) against a fixed reference set.
///
/// Distances come from one GEMM per block of queries: `‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b`. That
/// identity screens candidates; a reference point that could enter the current `k` best has its
/// squared distance recomputed from the coordinate differences (in `Float`, coordinates in order),
/// so close and identical points get accurate distances (an identical point is at exactly 0) and
/// the result does not depend on how BLAS splits the product across threads. The screen allows for
/// the worst-case rounding of the GEMM identity and of the recomputation
/// (`(2 · dimension + 16) · ε · (‖a‖² + ‖b‖²)`, `ε = Float.ulpOfOne`), so it never drops a true
/// neighbour; for data in random order about `k · (1 + ln(references / k))`
/// candidates per query are recomputed, each at `O(dimension)`.
///
/// The GEMM runs on copies of the points centred on the reference mean (distances do not change),
/// which keeps the norms, and so the cancellation in the identity, small for data far from the
/// origin such as ReLU activations. Queries are processed in blocks so the
/// `[block, references]` product workspace stays within `workspaceBytes` however many queries
/// there are; the `k` smallest per query are kept in a bounded max-heap, never by sorting all
/// distances.
///
/// Ties are broken towards the smaller reference index, so results are deterministic for any BLAS
/// thread count (and equal to a naive loop that sums `(q_c − r_c)²` in `Float` in coordinate order).
/// A `NearestNeighbors` is immutable; each search allocates its own workspace, so concurrent
/// searches on one value are safe. Only the excluded index is skipped: a duplicate of a query stored under another
/// index is a neighbour at distance 0.
public struct NearestNeighbors: Sendable {
  /// The default bound on the product workspace of one block: 64 MiB.
  public static let defaultWorkspaceBytes = 64 << 20

  /// The reference points as given: `[references, dimension]`.
  public let reference: Matrix
  /// The reference points minus `center`: `[references, dimension]`.
  private let centered: Matrix
  /// The mean reference row: `[dimension]`.
  private let center: [Float]
  /// `‖centered row‖²` for each reference row: `[references]`.
  private let squaredNorms: [Float]

  /// Prepares a reference set for searching.
  ///
  /// - Parameter reference: The reference points, `[references, dimension]`, at least one row.
  /// - Throws: `GeometryError` `.emptyReference` without rows, `.nonFiniteValue` for NaN or
  ///   infinite coordinates.
  /// - Complexity: `O(references · dimension)`.
  public init(reference: Matrix) throws(GeometryError) {
    guard reference.rows > 0 else {
      throw GeometryError(.emptyReference, "the reference set has no points")
    }
    try Self.requireFinite(reference, name: "reference")
    self.reference = reference
    let (rows, columns) = (reference.rows, reference.columns)
    var mean = [Double](repeating: 0, count: columns)
    reference.storage.withUnsafeBufferPointer { source in
      for r in 0..<rows {
        for c in 0..<columns { mean[c] += Double(source[r * columns + c]) }
      }
    }
    let center = mean.map { Float($0 / Double(rows)) }
    var centered = reference
    var norms = [Float](repeating: 0, count: rows)
    centered.storage.withUnsafeMutableBufferPointer { values in
      for r in 0..<rows {
        var squares: Double = 0
        for c in 0..<columns {
          let v = values[r * columns + c] - center[c]
          values[r * columns + c] = v
          squares += Double(v) * Double(v)
        }
        norms[r] = Float(squares)
      }
    }
    self.center = center
    self.centered = centered
    self.squaredNorms = norms
  }

  /// Number of reference points.
  public var count: Int { reference.rows }

  /// Dimension of the points.
  public var dimension: Int { reference.columns }

  /// The `k` nearest reference points of each query row, nearest first.
  ///
  /// - Parameters:
  ///   - queries: The query points, `[queries, dimension]`.
  ///   - k: Neighbours per query, `1 ≤ k ≤ references` (`references − 1` when excluding self).
  ///   - excludingSelf: Query row `i` is reference row `i` (the queries are the reference set, or
  ///     its first rows) and must not count as its own neighbour. Only that index is excluded: a
  ///     duplicate of the point under another index still counts, at distance 0.
  ///   - workspaceBytes: Bound on the `[block, references]` product workspace; the block holds at
  ///     least one query.
  /// - Returns: Distances `[queries, k]` ascending per row, and the matching reference indices.
  /// - Throws: `GeometryError` for a dimension mismatch, an out-of-range `k`, more queries than
  ///   reference rows when `excludingSelf`, or non-finite coordinates.
  /// - Complexity: `O(queries · references · (dimension + log k))` time,
  ///   `O(min(queries, workspaceBytes / (4 · references)) · references)` extra memory.
  public func search(
    _ queries: Matrix, k: Int, excludingSelf: Bool = false,
    workspaceBytes: Int = NearestNeighbors.defaultWorkspaceBytes
  ) throws(GeometryError) -> NeighborList {
    if excludingSelf && queries.rows > count {
      throw GeometryError(
        .dimensionMismatch,
        "excludingSelf needs query i to be reference row i, but there are \(queries.rows) queries "
          + "and \(count) reference points")
    }
    let excluded: [Int?] = excludingSelf ? Array(0..<queries.rows) : []
    return try search(queries, k: k, excludingIndices: excluded, workspaceBytes: workspaceBytes)
  }

  /// The `k` nearest reference points of each query row, with one reference index to skip per query.
  ///
  /// - Parameters:
  ///   - queries: The query points, `[queries, dimension]`.
  ///   - k: Neighbours per query, `1 ≤ k ≤` the reference points left to every query.
  ///   - excludingIndices: Empty (exclude nothing), or one entry per query: the reference index that
  ///     query may not return (its own index when it is a reference point), or `nil`.
  ///   - workspaceBytes: Bound on the `[block, references]` product workspace.
  /// - Returns: Distances `[queries, k]` ascending per row, and the matching reference indices.
  /// - Throws: `GeometryError` for a dimension mismatch, an exclusion list of the wrong length or
  ///   with an index out of range, an out-of-range `k`, or non-finite coordinates.
  public func search(
    _ queries: Matrix, k: Int, excludingIndices: [Int?],
    workspaceBytes: Int = NearestNeighbors.defaultWorkspaceBytes
  ) throws(GeometryError) -> NeighborList {
    guard queries.columns == dimension else {
      throw GeometryError(
        .dimensionMismatch,
        "queries have \(queries.columns) columns, the reference points \(dimension)")
    }
    guard excludingIndices.isEmpty || excludingIndices.count == queries.rows else {
      throw GeometryError(
        .dimensionMismatch,
        "excludingIndices has \(excludingIndices.count) entries for \(queries.rows) queries")
    }
    var excludes = false
    for case let index? in excludingIndices {
      guard index >= 0 && index < count else {
        throw GeometryError(
          .dimensionMismatch, "excluded index \(index) is not a reference row (0..<\(count))")
      }
      excludes = true
    }
    let available = count - (excludes ? 1 : 0)
    guard k >= 1 && k <= available else {
      throw GeometryError(
        .invalidNeighborCount,
        "k = \(k) must be between 1 and \(available), the reference points available to each query")
    }
    guard workspaceBytes > 0 else {
      throw GeometryError(.invalidArgument, "workspaceBytes = \(workspaceBytes) must be positive")
    }
    try Self.requireFinite(queries, name: "queries")

    let total = queries.rows
    var distances = Matrix(rows: total, columns: k)
    var indices = [Int](repeating: 0, count: total * k)
    guard total > 0 else { return NeighborList(k: k, distances: distances, indices: indices) }
    let blockRows = min(total, max(1, workspaceBytes / (MemoryLayout<Float>.stride * count)))
    var workspace = Workspace(blockRows: blockRows, columns: dimension, references: count, k: k)
    distances.storage.withUnsafeMutableBufferPointer { outDistances in
      indices.withUnsafeMutableBufferPointer { outIndices in
        var start = 0
        while start < total {
          let rows = min(blockRows, total - start)
          searchBlock(
            queries, start: start, rows: rows, excludingIndices: excludingIndices,
            workspace: &workspace, distances: outDistances, indices: outIndices)
          start += rows
        }
      }
    }
    return NeighborList(k: k, distances: distances, indices: indices)
  }

  /// Buffers reused across blocks of one search.
  private struct Workspace {
    /// Centred queries of the block: `[blockRows, columns]`.
    var block: [Float]
    /// Squared norms of the centred queries: `[blockRows]`.
    var blockNorms: [Float]
    /// Dot products with every reference point: `[blockRows, references]`.
    var products: [Float]
    /// The running `k` best of one query.
    var heap: BoundedMaxHeap

    init(blockRows: Int, columns: Int, references: Int, k: Int) {
      block = [Float](repeating: 0, count: blockRows * columns)
      blockNorms = [Float](repeating: 0, count: blockRows)
      products = [Float](repeating: 0, count: blockRows * references)
      heap = BoundedMaxHeap(capacity: k)
    }
  }

  /// Searches queries `start ..< start + rows`, writing rows of `distances` and `indices` (`k` each).
  private func searchBlock(
    _ queries: Matrix, start: Int, rows: Int, excludingIndices: [Int?], workspace: inout Workspace,
    distances: UnsafeMutableBufferPointer<Float>, indices: UnsafeMutableBufferPointer<Int>
  ) {
    let (columns, references, k) = (dimension, count, workspace.heap.capacity)
    // A bound, relative to ‖a‖² + ‖b‖², on the rounding of the GEMM identity (each term a sum of
    // `columns` products), of centring, and of the recomputed distance it is compared with.
    let margin = Float(2 * columns + 16) * Float.ulpOfOne
    queries.storage.withUnsafeBufferPointer { source in
      // Centre this block of queries and take their squared norms.
      workspace.block.withUnsafeMutableBufferPointer { target in
        for r in 0..<rows {
          var squares: Double = 0
          for c in 0..<columns {
            let v = source[(start + r) * columns + c] - center[c]
            target[r * columns + c] = v
            squares += Double(v) * Double(v)
          }
          workspace.blockNorms[r] = Float(squares)
        }
      }
      // products[r, j] = centred query r · centred reference j: one GEMM for the block.
      workspace.block.withUnsafeBufferPointer { a in
        centered.storage.withUnsafeBufferPointer { b in
          workspace.products.withUnsafeMutableBufferPointer { c in
            guard columns > 0, let aBase = a.baseAddress, let bBase = b.baseAddress,
              let cBase = c.baseAddress
            else {
              c.update(repeating: 0)
              return
            }
            if rows <= 4 {
              // A few queries (a served prompt): one pass over the references per query, without
              // the GEMM's copy of the whole reference set into its packed layout.
              for r in 0..<rows {
                BLAS.gemv(
                  m: references, n: columns, a: bBase, lda: columns, x: aBase + r * columns,
                  y: cBase + r * references)
              }
            } else {
              BLAS.gemm(
                transposeB: true, m: rows, n: references, k: columns,
                a: aBase, lda: columns, b: bBase, ldb: columns, c: cBase, ldc: references)
            }
          }
        }
      }
      reference.storage.withUnsafeBufferPointer { referenceValues in
        squaredNorms.withUnsafeBufferPointer { referenceNorms in
          workspace.products.withUnsafeBufferPointer { dots in
            for r in 0..<rows {
              let query = start + r
              let excluded = excludingIndices.isEmpty ? -1 : (excludingIndices[query] ?? -1)
              let queryNorm = workspace.blockNorms[r]
              let queryOffset = query * columns
              workspace.heap.removeAll()
              for j in 0..<references where j != excluded {
                let scale = queryNorm + referenceNorms[j]
                let estimate = scale - 2 * dots[r * references + j]
                guard workspace.heap.wouldAccept(estimate - margin * scale, j) else { continue }
                // Recompute from the original coordinates: exact for identical points.
                let referenceOffset = j * columns
                var squared: Float = 0
                for c in 0..<columns {
                  let difference = source[queryOffset + c] - referenceValues[referenceOffset + c]
                  squared += difference * difference
                }
                workspace.heap.offer(squared, j)
              }
              workspace.heap.drainAscending(distances: distances, indices: indices, offset: query * k)
            }
          }
        }
      }
    }
  }

  /// Throws `.nonFiniteValue` if any entry of `matrix` is NaN or infinite.
  static func requireFinite(_ matrix: Matrix, name: String) throws(GeometryError) {
    let bad = matrix.storage.withUnsafeBufferPointer { values in
      values.firstIndex { !$0.isFinite }
    }
    if let bad {
      let columns = max(matrix.columns, 1)
      throw GeometryError(
        .nonFiniteValue,
        "\(name) has a non-finite value at row \(bad / columns), column \(bad % columns)")
    }
  }
}

/// The result of a k-nearest-neighbour search: for each query, `k` neighbours nearest first.
public struct NeighborList: Sendable, Equatable {
  /// Neighbours per query.
  public let k: Int
  /// Euclidean distances, ascending along each row: `[queries, k]`.
  public let distances: Matrix
  /// Reference indices matching `distances`, row-major: `[queries · k]`.
  public let indices: [Int]

  /// Number of queries.
  public var count: Int { distances.rows }

  /// The distances of one query's neighbours, ascending: `[k]`.
  public func distances(ofQuery query: Int) -> [Float] { distances.row(query) }

  /// The reference indices of one query's neighbours, nearest first: `[k]`.
  public func indices(ofQuery query: Int) -> [Int] {
    precondition(query >= 0 && query < count, "query out of range")
    return Array(indices[(query * k)..<((query + 1) * k)])
  }
}

/// The `capacity` smallest `(squared distance, index)` pairs seen so far, as a binary max-heap.
///
/// Pairs compare by distance, then by index, so ties keep the smaller index.
private struct BoundedMaxHeap {
  let capacity: Int
  private var keys: [Float]
  private var indices: [Int]
  private var size = 0

  init(capacity: Int) {
    self.capacity = capacity
    keys = [Float](repeating: 0, count: capacity)
    indices = [Int](repeating: 0, count: capacity)
  }

  mutating func removeAll() { size = 0 }

  @inline(__always)
  private func greater(_ a: Int, _ b: Int) -> Bool {
    keys[a] > keys[b] || (keys[a] == keys[b] && indices[a] > indices[b])
  }

  /// Whether `offer` would keep this pair now.
  @inline(__always)
  func wouldAccept(_ key: Float, _ index: Int) -> Bool {
    size < capacity || key < keys[0] || (key == keys[0] && index < indices[0])
  }

  /// Offers a pair; it is kept if fewer than `capacity` pairs are held or it beats the largest.
  @inline(__always)
  mutating func offer(_ key: Float, _ index: Int) {
    if size < capacity {
      keys[size] = key
      indices[size] = index
      size += 1
      siftUp(size - 1)
    } else if key < keys[0] || (key == keys[0] && index < indices[0]) {
      keys[0] = key
      indices[0] = index
      siftDown(0, limit: size)
    }
  }

  private mutating func siftUp(_ start: Int) {
    var child = start
    while child > 0 {
      let parent = (child - 1) / 2
      guard greater(child, parent) else { return }
      keys.swapAt(child, parent)
      indices.swapAt(child, parent)
      child = parent
    }
  }

  private mutating func siftDown(_ start: Int, limit: Int) {
    var parent = start
    while true {
      let left = 2 * parent + 1
      guard left < limit else { return }
      var largest = left
      if left + 1 < limit && greater(left + 1, left) { largest = left + 1 }
      guard greater(largest, parent) else { return }
      keys.swapAt(largest, parent)
      indices.swapAt(largest, parent)
      parent = largest
    }
  }

  /// Writes the held pairs in ascending order (as Euclidean distances) and empties the heap.
  mutating func drainAscending(
    distances: UnsafeMutableBufferPointer<Float>, indices output: UnsafeMutableBufferPointer<Int>,
    offset: Int
  ) {
    precondition(size == capacity, "heap holds \(size) of \(capacity) neighbours")
    // Heap sort in place: the largest goes to the end each round.
    var limit = size
    while limit > 1 {
      keys.swapAt(0, limit - 1)
      indices.swapAt(0, limit - 1)
      limit -= 1
      siftDown(0, limit: limit)
    }
    for i in 0..<size {
      distances[offset + i] = keys[i].squareRoot()
      output[offset + i] = indices[i]
    }
    size = 0
  }
}
