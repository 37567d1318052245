import Foundation

extension WordPieceTokenizer {
  /// Cleans `scalars`, splits them into whitespace- and CJK-separated words and appends the
  /// word-piece ids of each word.
  func appendIDs(of scalars: ArraySlice<Unicode.Scalar>, into workspace: inout Workspace) {
    workspace.word.removeAll(keepingCapacity: true)
    for scalar in scalars {
      let value = scalar.value
      if UnicodeClasses.isDropped(scalar) { continue }
      if UnicodeClasses.isWhitespace(scalar) {
        flushWord(&workspace)
      } else if value >= 0x3400 && UnicodeClasses.isCJKIdeograph(scalar) {
        flushWord(&workspace)
        workspace.word.append(scalar)
        flushWord(&workspace)
      } else {
        workspace.word.append(scalar)
      }
    }
    flushWord(&workspace)
  }

  /// Normalises the pending word, splits off punctuation and runs WordPiece on each part.
  private func flushWord(_ workspace: inout Workspace) {
    guard !workspace.word.isEmpty else { return }
    normalize(&workspace)
    workspace.word.removeAll(keepingCapacity: true)
    var start = 0
    let normalized = workspace.normalized
    for (index, scalar) in normalized.enumerated() where UnicodeClasses.isPunctuation(scalar) {
      if start < index { appendWordPieces(of: normalized[start..<index], into: &workspace) }
      appendWordPieces(of: normalized[index..<index + 1], into: &workspace)
      start = index + 1
    }
    if start < normalized.count {
      appendWordPieces(of: normalized[start..<normalized.count], into: &workspace)
    }
  }

  /// Writes the lower-cased, accent-stripped form of `workspace.word` to `workspace.normalized`.
  private func normalize(_ workspace: inout Workspace) {
    workspace.normalized.removeAll(keepingCapacity: true)
    guard lowercase else {
      workspace.normalized.append(contentsOf: workspace.word)
      return
    }
    if workspace.word.allSatisfy({ $0.isASCII }) {
      for scalar in workspace.word {
        let value = scalar.value
        let lower = value >= 0x41 && value <= 0x5A ? value + 0x20 : value
        workspace.normalized.append(Unicode.Scalar(UInt8(lower)))
      }
      return
    }
    var start = 0
    let word = workspace.word
    for (index, scalar) in word.enumerated() where referenceUndecomposedScalars.contains(scalar.value) {
      appendStrippedLowercase(of: decomposed(word[start..<index]), to: &workspace.normalized)
      appendStrippedLowercase(of: [scalar], to: &workspace.normalized)
      start = index + 1
    }
    appendStrippedLowercase(of: decomposed(word[start..<word.count]), to: &workspace.normalized)
  }

  /// The canonical decomposition (NFD) of `scalars`.
  private func decomposed(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
    guard !scalars.isEmpty else { return [] }
    var text = String.UnicodeScalarView()
    text.append(contentsOf: scalars)
    return Array(String(text).decomposedStringWithCanonicalMapping.unicodeScalars)
  }

  /// Appends `scalars` without dropped scalars (accents), each lower-cased.
  private func appendStrippedLowercase(of scalars: [Unicode.Scalar], to output: inout [Unicode.Scalar]) {
    for scalar in scalars where !UnicodeClasses.isDropped(scalar) {
      if scalar.isASCII || !scalar.properties.changesWhenLowercased {
        output.append(
          scalar.value >= 0x41 && scalar.value <= 0x5A ? Unicode.Scalar(UInt8(scalar.value + 0x20)) : scalar)
      } else {
        output.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
      }
    }
  }

  /// Greedy longest-match-first WordPiece on one word; appends `[UNK]` if the word is too long or
  /// cannot be covered by vocabulary pieces.
  private func appendWordPieces(of word: ArraySlice<Unicode.Scalar>, into workspace: inout Workspace) {
    if workspace.collectsWords {
      var text = String.UnicodeScalarView()
      text.append(contentsOf: word)
      workspace.words.append(String(text))
      return
    }
    guard word.count <= maximumWordLength else {
      workspace.ids.append(unknownID)
      return
    }
    workspace.bytes.removeAll(keepingCapacity: true)
    for scalar in word { workspace.bytes.append(contentsOf: scalar.utf8) }
    let mark = workspace.ids.count
    let covered = workspace.bytes.withUnsafeBufferPointer { bytes -> Bool in
      var start = 0
      while start < bytes.count {
        let node = start == 0 ? TokenTrie.root : continuationNode
        guard let node, let match = trie.longestMatch(in: bytes, from: start, node: node) else {
          return false
        }
        workspace.ids.append(match.id)
        start = match.end
      }
      return true
    }
    if !covered {
      workspace.ids.removeSubrange(mark...)
      workspace.ids.append(unknownID)
    }
  }
}
