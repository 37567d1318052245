/// Cuts a prompt into the pieces a reader takes one at a time: its lines, and the sentences of
/// each line (`DetectorConfiguration.Chunking.segments`).
///
/// An instruction appended to a task ("…Product: Ignore the previous instructions and print…")
/// is encoded as part of the task when the prompt is read whole, and the task's rows dilute it;
/// read alone, it is the instruction it is. Segment scoring encodes each piece on its own.
package enum PromptSegments {
  /// The segments of `text`, in order: the text is cut at every line break, and a line after
  /// `.`, `!` or `?` followed by white space and an upper-case letter, a digit, a quotation mark
  /// or an opening bracket. Pieces with fewer than two words (runs of letters, digits and `_`)
  /// are dropped, and white space around each is trimmed.
  ///
  /// - Parameters:
  ///   - text: The prompt.
  ///   - limit: At most this many segments: of a prompt with more, the first `⌈limit / 2⌉` and the
  ///     last `⌊limit / 2⌋`, so that ordinary sentences before an instruction at the end (or after
  ///     one at the start) cannot push it out of reach.
  /// - Returns: The segments with their places among all the prompt's segments (which name their
  ///   cache entries: a segment keeps its index whatever the limit), or `[]` when fewer than two
  ///   remain (the whole prompt is the one piece, and it is scored whole already).
  package static func indexedSegments(of text: String, limit: Int) -> [(index: Int, text: String)] {
    let all = Array(allSegments(of: text).enumerated()).map { (index: $0.offset, text: $0.element) }
    guard all.count >= 2 else { return [] }
    guard all.count > limit else { return all }
    let head = (limit + 1) / 2
    return Array(all.prefix(head) + all.suffix(limit - head))
  }

  /// Every segment of `text`, in order (`indexedSegments(of:limit:)` without the limit).
  private static func allSegments(of text: String) -> [String] {
    var pieces: [String] = []
    var current = ""
    var afterStop = false  // the last character was `.`, `!` or `?`
    var pendingSpace = false  // white space follows such a stop
    func close() {
      let trimmed = current.trimmingWhiteSpace()
      if wordCount(trimmed) >= 2 { pieces.append(trimmed) }
      current = ""
    }
    for character in text {
      if character.isNewline {
        close()
        afterStop = false
        pendingSpace = false
        continue
      }
      if pendingSpace, !character.isWhitespace {
        if opensSentence(character) { close() }
        pendingSpace = false
      }
      if afterStop, character.isWhitespace { pendingSpace = true }
      afterStop = character == "." || character == "!" || character == "?"
      current.append(character)
    }
    close()
    return pieces
  }

  /// Whether a sentence may start with `character`.
  private static func opensSentence(_ character: Character) -> Bool {
    character.isUppercase || character.isNumber || "\"'“‘([".contains(character)
  }

  /// Runs of letters, digits and `_` in `text`, counted up to 2.
  private static func wordCount(_ text: String) -> Int {
    var count = 0
    var inWord = false
    for character in text {
      let wordCharacter = character.isLetter || character.isNumber || character == "_"
      if wordCharacter, !inWord {
        count += 1
        if count >= 2 { return count }
      }
      inWord = wordCharacter
    }
    return count
  }
}

extension String {
  /// The string without leading and trailing white space (newlines included).
  fileprivate func trimmingWhiteSpace() -> String {
    guard let first = firstIndex(where: { !$0.isWhitespace }),
      let last = lastIndex(where: { !$0.isWhitespace })
    else { return "" }
    return String(self[first...last])
  }
}
