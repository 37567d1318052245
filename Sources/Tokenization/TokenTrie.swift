/// A byte trie over the UTF-8 spellings of vocabulary tokens, for greedy longest-prefix matching
/// without building candidate strings.
struct TokenTrie: Sendable {
  /// The root node.
  static let root: Int32 = 0

  /// Child links keyed by `(node << 8) | byte`.
  private var children: [Int: Int32] = [:]
  /// The token id ending at each node, or -1.
  private var tokenIDs: [Int32] = [-1]

  /// Builds a trie of all tokens of `vocabulary`.
  init(vocabulary: Vocabulary) {
    children.reserveCapacity(vocabulary.count * 4)
    for (id, token) in vocabulary.allTokens.enumerated() {
      insert(token.utf8, id: Int32(id))
    }
  }

  private mutating func insert(_ bytes: some Sequence<UInt8>, id: Int32) {
    var node = Self.root
    for byte in bytes {
      let key = Int(node) << 8 | Int(byte)
      if let next = children[key] {
        node = next
      } else {
        let next = Int32(tokenIDs.count)
        tokenIDs.append(-1)
        children[key] = next
        node = next
      }
    }
    tokenIDs[Int(node)] = id
  }

  /// The node reached from `node` by `bytes`, or `nil` if no token has that prefix.
  func node(from node: Int32, following bytes: some Sequence<UInt8>) -> Int32? {
    var node = node
    for byte in bytes {
      guard let next = children[Int(node) << 8 | Int(byte)] else { return nil }
      node = next
    }
    return node
  }

  /// The longest token that, read from `start`, spells a prefix of `bytes[start...]`.
  ///
  /// - Parameters:
  ///   - bytes: UTF-8 of one word.
  ///   - start: Where the match begins.
  ///   - node: The node to start from (the root, or the node after `##` for continuations).
  /// - Returns: The token id and the end offset of the match, or `nil` if nothing matches.
  /// - Complexity: O(length of the longest matching path).
  func longestMatch(
    in bytes: UnsafeBufferPointer<UInt8>, from start: Int, node: Int32
  ) -> (id: Int, end: Int)? {
    var node = node
    var best: (id: Int, end: Int)?
    var index = start
    while index < bytes.count, let next = children[Int(node) << 8 | Int(bytes[index])] {
      node = next
      index += 1
      let id = tokenIDs[Int(node)]
      if id >= 0 { best = (Int(id), index) }
    }
    return best
  }
}
