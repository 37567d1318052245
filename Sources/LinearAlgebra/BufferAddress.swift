extension UnsafeBufferPointer {
  /// The address of the first element, for C calls on a buffer known to be non-empty.
  ///
  /// An empty buffer here is a programming error (every caller passes tensors with at least one
  /// element), so it stops with a precondition failure rather than throwing.
  public var firstAddress: UnsafePointer<Element> {
    guard let address = baseAddress else { preconditionFailure("buffer has no storage") }
    return address
  }
}

extension UnsafeMutableBufferPointer {
  /// The address of the first element, for C calls on a buffer known to be non-empty.
  ///
  /// An empty buffer here is a programming error, so it stops with a precondition failure.
  public var firstAddress: UnsafeMutablePointer<Element> {
    guard let address = baseAddress else { preconditionFailure("buffer has no storage") }
    return address
  }
}
