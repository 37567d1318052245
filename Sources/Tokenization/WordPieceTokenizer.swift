import Foundation

/// The BERT uncased tokenizer: basic tokenization followed by greedy longest-match-first
/// WordPiece, giving the same ids as Hugging Face's `BertTokenizer` (the `tokenizers`-backed one
/// of transformers 5) for `do_lower_case=True`, `tokenize_chinese_chars=True`.
///
/// Steps, all on Unicode scalars:
/// 1. Special tokens (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`) written literally in the text
///    are recognised as themselves, as Hugging Face does by default; the text between them is
///    tokenized separately.
/// 2. Cleaning: U+0000, U+FFFD and scalars of categories Cc, Cf, Co are dropped (tab, line feed
///    and carriage return are whitespace); `White_Space` scalars separate words.
/// 3. CJK ideographs become words of their own.
/// 4. With `lowercase`: canonical decomposition (NFD), removal of non-spacing marks (Mn), then
///    per-scalar lower-casing.
/// 5. Punctuation (ASCII symbols and Unicode P* categories) is split off, one scalar per word.
/// 6. WordPiece: a word longer than `maximumWordLength` scalars, or one that cannot be covered by
///    vocabulary pieces (continuations spelled with `##`), becomes `[UNK]`.
public struct WordPieceTokenizer: Sendable {
  /// The vocabulary the ids refer to.
  public let vocabulary: Vocabulary
  /// Whether text is lower-cased and stripped of accents.
  public let lowercase: Bool
  /// Words with more scalars than this become `[UNK]`.
  public let maximumWordLength: Int
  /// The id of `[CLS]`.
  public var classifierID: Int
  /// The id of `[SEP]`.
  public var separatorID: Int
  /// The id of `[UNK]`.
  public var unknownID: Int
  /// The id of `[PAD]`.
  public var paddingID: Int

  let trie: TokenTrie
  /// The trie node after `##`, from which continuation pieces are matched.
  let continuationNode: Int32?
  /// Special tokens recognised in raw text: their scalars and ids.
  private let specialTokens: [(scalars: [Unicode.Scalar], id: Int)]

  /// Creates a tokenizer over `vocabulary`.
  ///
  /// - Parameters:
  ///   - vocabulary: Must contain `[CLS]`, `[SEP]`, `[UNK]` and `[PAD]`.
  ///   - lowercase: Lower-case and strip accents (BERT uncased). Defaults to `true`.
  ///   - maximumWordLength: Longest word, in scalars, that WordPiece splits. Defaults to 100.
  /// - Throws: `invalidVocabulary` if a required special token is missing.
  public init(
    vocabulary: Vocabulary, lowercase: Bool = true, maximumWordLength: Int = 100
  ) throws(TokenizationError) {
    func require(_ token: String) throws(TokenizationError) -> Int {
      guard let id = vocabulary.id(of: token) else {
        throw TokenizationError(.invalidVocabulary, "the vocabulary lacks \(token)")
      }
      return id
    }
    classifierID = try require("[CLS]")
    separatorID = try require("[SEP]")
    unknownID = try require("[UNK]")
    paddingID = try require("[PAD]")
    self.vocabulary = vocabulary
    self.lowercase = lowercase
    self.maximumWordLength = maximumWordLength
    let trie = TokenTrie(vocabulary: vocabulary)
    self.trie = trie
    continuationNode = trie.node(from: TokenTrie.root, following: "##".utf8)
    specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { token in
      vocabulary.id(of: token).map { (Array(token.unicodeScalars), $0) }
    }
  }

  /// Word-piece ids of `text`, without `[CLS]`/`[SEP]`.
  ///
  /// - Complexity: O(n · m) for n scalars and a longest vocabulary token of m bytes.
  public func pieceIDs(for text: String) -> [Int] {
    pieceIDs(scalars: Array(text.unicodeScalars))
  }

  /// Word-piece ids of UTF-8 `bytes`, without `[CLS]`/`[SEP]`.
  ///
  /// - Throws: `invalidUTF8` if `bytes` is not well-formed UTF-8; the message gives the offset of
  ///   the first bad byte.
  public func pieceIDs(forUTF8 bytes: some Collection<UInt8>) throws(TokenizationError) -> [Int] {
    pieceIDs(scalars: try UTF8Decoding.scalars(of: bytes))
  }

  /// `[CLS]`, the word-piece ids of `text`, `[SEP]`; never truncated.
  public func encode(_ text: String) -> [Int] {
    [classifierID] + pieceIDs(for: text) + [separatorID]
  }

  /// The words WordPiece would see: cleaned, normalised and split, special tokens kept whole.
  package func basicTokens(for text: String) -> [String] {
    var workspace = Workspace()
    workspace.collectsWords = true
    run(scalars: Array(text.unicodeScalars), into: &workspace)
    return workspace.words
  }

  private func pieceIDs(scalars: [Unicode.Scalar]) -> [Int] {
    var workspace = Workspace()
    run(scalars: scalars, into: &workspace)
    return workspace.ids
  }

  private func run(scalars: [Unicode.Scalar], into workspace: inout Workspace) {
    workspace.ids.reserveCapacity(scalars.count / 3 + 4)
    var segmentStart = 0
    var index = 0
    while index < scalars.count {
      if scalars[index] == "[", let special = specialToken(in: scalars, at: index) {
        appendIDs(of: scalars[segmentStart..<index], into: &workspace)
        if workspace.collectsWords {
          workspace.words.append(String(String.UnicodeScalarView(special.scalars)))
        } else {
          workspace.ids.append(special.id)
        }
        index += special.scalars.count
        segmentStart = index
      } else {
        index += 1
      }
    }
    appendIDs(of: scalars[segmentStart..<scalars.count], into: &workspace)
  }

  private func specialToken(
    in scalars: [Unicode.Scalar], at index: Int
  ) -> (scalars: [Unicode.Scalar], id: Int)? {
    specialTokens.first { scalars[index...].starts(with: $0.scalars) }
  }
}

/// Reusable buffers for one tokenization call.
struct Workspace {
  var ids: [Int] = []
  var word: [Unicode.Scalar] = []
  var normalized: [Unicode.Scalar] = []
  var bytes: [UInt8] = []
  /// When set, words are collected as strings instead of being turned into ids.
  var collectsWords = false
  var words: [String] = []
}
