import Foundation

/// Letters written in another alphabet that a reader maps back one for one: Braille cells and the
/// NATO spelling alphabet.
extension WordPieceTokenizer {
  /// The Latin letters of the Braille cells that write them (Unicode Braille Patterns, grade 1).
  package static let brailleLetters: [Unicode.Scalar: Unicode.Scalar] = {
    let cells = "⠁⠃⠉⠙⠑⠋⠛⠓⠊⠚⠅⠇⠍⠝⠕⠏⠟⠗⠎⠞⠥⠧⠺⠭⠽⠵"
    return Dictionary(
      uniqueKeysWithValues: zip(cells.unicodeScalars, "abcdefghijklmnopqrstuvwxyz".unicodeScalars))
  }()

  /// The fewest Braille letters a text needs before `foldingBraille` reads it.
  package static let brailleLettersNeeded = 8

  /// `text` with Braille read as Latin letters, when it holds at least `brailleLettersNeeded`
  /// Braille letters (`brailleLetters`): every letter cell becomes its letter, the blank cell
  /// (U+2800) a space, and the other cells (the capital and number signs, punctuation) are
  /// dropped; `text` itself otherwise.
  package static func foldingBraille(in text: String) -> String {
    guard text.unicodeScalars.lazy.filter({ brailleLetters[$0] != nil }).count >= brailleLettersNeeded else {
      return text
    }
    var output = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      if let letter = brailleLetters[scalar] {
        output.append(letter)
      } else if scalar == "\u{2800}" {
        output.append(" ")
      } else if !(0x2801...0x28FF).contains(scalar.value) {
        output.append(scalar)
      }
    }
    return String(output)
  }

  /// The NATO spelling alphabet's code words (lower case, with the common variants) and their
  /// letters.
  package static let spellingAlphabet: [String: Character] = {
    let words = [
      "alfa", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett", "kilo",
      "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
      "victor", "whiskey", "xray", "yankee", "zulu",
    ]
    var table = Dictionary(uniqueKeysWithValues: zip(words, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    for (variant, letter) in [("alpha", "A"), ("juliet", "J"), ("whisky", "W"), ("x-ray", "X")]
      as [(String, Character)]
    {
      table[variant] = letter
    }
    return table
  }()

  /// The fewest consecutive code words before `readingSpellingAlphabet` reads a run.
  static let spellingWordsNeeded = 8

  /// `text` with every run of at least `spellingWordsNeeded` NATO code words
  /// (`spellingAlphabet`, any case; `India Golf November Oscar Romeo Echo`) read as the word they
  /// spell (`IGNORE`). Code words one space or a comma apart spell one word; `/`, `|`, two spaces
  /// or a line break between them start the next. Names and ordinary sentences, which hold a code
  /// word or two, stay.
  package static func readingSpellingAlphabet(in text: String) -> String {
    // Tokens: maximal runs of letters and `-` (for `X-ray`), with the text between them.
    var tokens: [(range: Range<String.Index>, letter: Character?)] = []
    var index = text.startIndex
    while index < text.endIndex {
      guard text[index].isLetter else {
        index = text.index(after: index)
        continue
      }
      var end = index
      while end < text.endIndex, text[end].isLetter || text[end] == "-" { end = text.index(after: end) }
      tokens.append((index..<end, spellingAlphabet[text[index..<end].lowercased()]))
      index = end
    }
    var output = ""
    var position = text.startIndex
    var start = 0
    while start < tokens.count {
      guard tokens[start].letter != nil else {
        start += 1
        continue
      }
      var stop = start
      while stop + 1 < tokens.count, tokens[stop + 1].letter != nil {
        let gap = text[tokens[stop].range.upperBound..<tokens[stop + 1].range.lowerBound]
        // Only white space and word breaks between code words.
        guard gap.allSatisfy({ $0.isWhitespace || $0 == "/" || $0 == "|" || $0 == "," }) else { break }
        stop += 1
      }
      if stop - start + 1 >= spellingWordsNeeded {
        output += text[position..<tokens[start].range.lowerBound] + " "
        for token in start...stop {
          if token > start {
            let gap = text[tokens[token - 1].range.upperBound..<tokens[token].range.lowerBound]
            let breaksWord =
              gap.contains { $0 == "/" || $0 == "|" || $0.isNewline } || gap.filter(\.isWhitespace).count >= 2
            if breaksWord { output += " " }
          }
          output.append(tokens[token].letter ?? " ")
        }
        output += " "
        position = tokens[stop].range.upperBound
      }
      start = stop + 1
    }
    guard position > text.startIndex else { return text }
    return output + text[position...]
  }
}
