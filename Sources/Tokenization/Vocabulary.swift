import Foundation

/// A WordPiece vocabulary: token strings and their ids (the id is the token's position).
///
/// Tokens are compared by their exact Unicode scalars (UTF-8 bytes), not by Swift's canonical
/// equivalence, so `"é"` (U+00E9) and `"e\u{301}"` are different tokens, as in Hugging Face.
public struct Vocabulary: Sendable {
  private let tokens: [String]
  private let idsByBytes: [[UInt8]: Int]

  /// Loads a `vocab.txt` file: one token per line, the id being the zero-based line index.
  ///
  /// A final line break is optional; a `\r` before a line break is ignored.
  /// - Parameter url: A file URL.
  /// - Throws: `fileNotFound` if the file cannot be read, `invalidUTF8` if it is not UTF-8,
  ///   `invalidVocabulary` for empty or duplicate tokens.
  public init(contentsOf url: URL) throws(TokenizationError) {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw TokenizationError(.fileNotFound, "cannot read vocabulary \(url.path): \(error)")
    }
    guard let text = String(validating: data, as: UTF8.self) else {
      throw TokenizationError(.invalidUTF8, "vocabulary \(url.path) is not valid UTF-8")
    }
    // Split on bytes: as a Character, "\r\n" is one grapheme and would not split on "\n".
    var lines = text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    if lines.last?.isEmpty == true { lines.removeLast() }
    let tokens = lines.map { line -> String in
      let trimmed = line.last == UInt8(ascii: "\r") ? line.dropLast() : line[...]
      return String(decoding: trimmed, as: UTF8.self)
    }
    do {
      try self.init(tokens: tokens)
    } catch {
      throw TokenizationError(error.code, "\(url.path): \(error.message)")
    }
  }

  /// Creates a vocabulary from tokens in id order.
  /// - Throws: `invalidVocabulary` if the list is empty or has an empty or duplicate token.
  public init(tokens: [String]) throws(TokenizationError) {
    guard !tokens.isEmpty else {
      throw TokenizationError(.invalidVocabulary, "the vocabulary is empty")
    }
    var ids: [[UInt8]: Int] = [:]
    ids.reserveCapacity(tokens.count)
    for (id, token) in tokens.enumerated() {
      guard !token.isEmpty else {
        throw TokenizationError(.invalidVocabulary, "empty token at id \(id)")
      }
      if let previous = ids.updateValue(id, forKey: Array(token.utf8)) {
        throw TokenizationError(
          .invalidVocabulary, "duplicate token \(token.debugDescription) at ids \(previous) and \(id)")
      }
    }
    self.tokens = tokens
    self.idsByBytes = ids
  }

  /// The number of tokens.
  public var count: Int { tokens.count }

  /// The id of `token`, or `nil` if it is not in the vocabulary.
  public func id(of token: String) -> Int? { idsByBytes[Array(token.utf8)] }

  /// The token with id `id`, or `nil` if `id` is out of range.
  public func token(for id: Int) -> String? { tokens.indices.contains(id) ? tokens[id] : nil }

  /// All tokens in id order (for building lookup structures).
  package var allTokens: [String] { tokens }
}
