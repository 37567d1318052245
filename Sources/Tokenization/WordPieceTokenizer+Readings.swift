import Foundation

extension WordPieceTokenizer {
  /// Look-alike Cyrillic and Greek letters and the Latin letters they imitate (Unicode's
  /// confusables for the letters an attacker swaps into English words).
  static let latinLookAlikes: [Unicode.Scalar: Unicode.Scalar] = {
    let pairs: [(String, String)] = [
      // Cyrillic lower and upper case.
      ("а", "a"), ("е", "e"), ("о", "o"), ("р", "p"), ("с", "c"), ("у", "y"), ("х", "x"), ("і", "i"),
      ("ј", "j"), ("ѕ", "s"), ("ԁ", "d"), ("һ", "h"), ("ԛ", "q"), ("ԝ", "w"), ("ү", "y"),
      ("А", "A"), ("В", "B"), ("Е", "E"), ("К", "K"), ("М", "M"), ("Н", "H"), ("О", "O"), ("Р", "P"),
      ("С", "C"), ("Т", "T"), ("Х", "X"), ("У", "Y"), ("І", "I"), ("Ј", "J"), ("Ѕ", "S"), ("Ү", "Y"),
      // Greek lower and upper case.
      ("α", "a"), ("ο", "o"), ("ρ", "p"), ("ν", "v"), ("ι", "i"), ("κ", "k"), ("υ", "u"), ("ε", "e"),
      ("Α", "A"), ("Β", "B"), ("Ε", "E"), ("Ζ", "Z"), ("Η", "H"), ("Ι", "I"), ("Κ", "K"), ("Μ", "M"),
      ("Ν", "N"), ("Ο", "O"), ("Ρ", "P"), ("Τ", "T"), ("Υ", "Y"), ("Χ", "X"),
    ]
    var map: [Unicode.Scalar: Unicode.Scalar] = [:]
    for (from, to) in pairs {
      if let key = from.unicodeScalars.first, let value = to.unicodeScalars.first { map[key] = value }
    }
    return map
  }()

  /// How a reader would see `text` when the tokenizer would not, or `nil` when the two agree.
  ///
  /// Three disguises leave a prompt legible to a language model but not to this tokenizer, and are
  /// undone here, in order:
  /// 1. compatibility forms of letters and digits (full-width `Ｉｇｎｏｒｅ`, mathematical `𝐈𝐠𝐧𝐨𝐫𝐞`,
  ///    circled `Ⓘ`): their NFKC forms (`isCompatibilityLetter`; full-width punctuation, which CJK
  ///    text uses, is left alone), and the letters that negative circled or squared letters and
  ///    regional indicators show (`🅸🅶🅽🅾🆁🅴`, `🇮🇬🇳🇴🇷🇪`), which have no NFKC form;
  /// 2. look-alike Cyrillic or Greek letters inside a Latin word (`Ignоre` with a Cyrillic `о`):
  ///    in words that mix Latin letters with such look-alikes, the look-alikes become their Latin
  ///    letters (words wholly in another script are left alone, so Russian or Greek text stays);
  /// 3. leetspeak (`1gn0r3 4ll pr3v10u5 …`), when at least three words read as vocabulary words
  ///    once their digits are letters (`foldingLeetspeak`);
  /// 4. words too long for WordPiece (`respacingLongWords`).
  ///
  /// The result is returned only when its word pieces differ from those of `text`. Only the
  /// detector's extra reading uses it (`EmbeddingProvider.chunkInputs`); `pieceIDs(for:)` keeps the
  /// reference tokenizer's output.
  public func alternateReading(_ text: String) -> String? {
    var reading = Self.foldingCompatibilityLetters(in: text)
    reading = Self.foldingLookAlikes(in: reading)
    reading = foldingLeetspeak(in: reading)
    reading = respacingLongWords(reading) ?? reading
    // Most prompts come back unchanged: no tokenization then.
    guard reading != text else { return nil }
    return pieceIDs(for: reading) == pieceIDs(for: text) ? nil : reading
  }

  /// Whether `scalar` is a compatibility form of a letter or digit used to disguise Latin text:
  /// full-width letters and digits (not full-width punctuation, which CJK text uses), enclosed
  /// alphanumerics (`Ⓘ`, `①`, `🄸`) and mathematical alphanumerics (`𝐈`, `𝘐`, `𝕀`).
  static func isCompatibilityLetter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0xFF10...0xFF19, 0xFF21...0xFF3A, 0xFF41...0xFF5A: true
    case 0x2460...0x24FF, 0x1F100...0x1F1FF, 0x1D400...0x1D7FF: true
    default: false
    }
  }

  /// The Latin capital letter that an enclosed-letter symbol without a compatibility form shows:
  /// negative circled (`🅐`, U+1F150…1F169), negative squared (`🅰`, U+1F170…1F189) and regional
  /// indicator letters (`🇦`, U+1F1E6…1F1FF, which text spells words with, `🇭🇴🇼`; a pair is also
  /// a flag, whose reading is then its two-letter region code).
  package static func enclosedSymbolLetter(_ scalar: Unicode.Scalar) -> Unicode.Scalar? {
    let offset: UInt32
    switch scalar.value {
    case 0x1F150...0x1F169: offset = scalar.value - 0x1F150
    case 0x1F170...0x1F189: offset = scalar.value - 0x1F170
    case 0x1F1E6...0x1F1FF: offset = scalar.value - 0x1F1E6
    default: return nil
    }
    return Unicode.Scalar(0x41 + offset)
  }

  /// `text` with every `isCompatibilityLetter` scalar replaced by its NFKC form, or by the letter
  /// it shows when it has none (`enclosedSymbolLetter`).
  static func foldingCompatibilityLetters(in text: String) -> String {
    guard text.unicodeScalars.contains(where: isCompatibilityLetter) else { return text }
    var output = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      if let letter = enclosedSymbolLetter(scalar) {
        output.append(letter)
      } else if isCompatibilityLetter(scalar) {
        output.append(contentsOf: String(scalar).precomposedStringWithCompatibilityMapping.unicodeScalars)
      } else {
        output.append(scalar)
      }
    }
    return String(output)
  }

  /// Digits that leetspeak writes for letters.
  static let leetLetters: [Unicode.Scalar: Unicode.Scalar] = [
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
  ]

  /// The fewest words that must read as vocabulary words before `foldingLeetspeak` folds any.
  static let leetWordsNeeded = 3

  /// `text` with leetspeak undone: a word of ASCII letters and digits, with at least one of each,
  /// whose lower-cased form is not a vocabulary word but becomes one when its digits are read as
  /// the letters they stand for (`leetLetters`), is replaced by that word, provided at least
  /// `leetWordsNeeded` words of the text do so; then all-digit words of up to three leet digits
  /// that fold into vocabulary words (`41` → `ai`, `4` → `a`) are folded too. Digits in `mp3`,
  /// `h264` or `covid19` stay (the folded forms are not words), and so does a text with one or two
  /// chance matches. Replacements keep the length of each word, so they are applied in any order.
  func foldingLeetspeak(in text: String) -> String {
    // Mixed words that fold into vocabulary words, and short all-digit ones that would (`41` for
    // `AI`, `4` for `a`), which are folded only once the mixed ones show the text is leetspeak.
    var mixed: [(range: Range<Int>, folded: [Unicode.Scalar])] = []
    var digitsOnly: [(range: Range<Int>, folded: [Unicode.Scalar])] = []
    let scalars = Array(text.unicodeScalars)
    var start = 0
    func consider(_ end: Int) {
      defer { start = end + 1 }
      guard end > start else { return }
      let word = scalars[start..<end]
      let hasLetter = word.contains { $0.properties.isAlphabetic }
      guard word.contains(where: { Self.leetLetters[$0] != nil }), word.allSatisfy({ $0.isASCII }) else {
        return
      }
      let lower = String(String.UnicodeScalarView(word)).lowercased()
      let folded = word.map { Self.leetLetters[$0] ?? $0 }
      let foldedLower = String(String.UnicodeScalarView(folded)).lowercased()
      guard vocabulary.id(of: lower) == nil || !hasLetter, vocabulary.id(of: foldedLower) != nil else {
        return
      }
      if hasLetter {
        mixed.append((start..<end, folded))
      } else if word.count <= 3, word.allSatisfy({ Self.leetLetters[$0] != nil }) {
        digitsOnly.append((start..<end, folded))
      }
    }
    for (index, scalar) in scalars.enumerated()
    where !(scalar.isASCII && (scalar.properties.isAlphabetic || scalar.properties.numericType != nil)) {
      consider(index)
    }
    consider(scalars.count)
    guard mixed.count >= Self.leetWordsNeeded else { return text }
    var output = scalars
    for word in mixed + digitsOnly { output.replaceSubrange(word.range, with: word.folded) }
    return String(String.UnicodeScalarView(output))
  }

  /// `text` with the look-alike letters of every word that also has Latin letters made Latin.
  static func foldingLookAlikes(in text: String) -> String {
    guard text.unicodeScalars.contains(where: { latinLookAlikes[$0] != nil }) else { return text }
    var output = String.UnicodeScalarView()
    var word: [Unicode.Scalar] = []
    func flush() {
      defer { word.removeAll(keepingCapacity: true) }
      let hasLatin = word.contains { $0.isASCII && $0.properties.isAlphabetic }
      let hasLookAlike = word.contains { latinLookAlikes[$0] != nil }
      if hasLatin && hasLookAlike {
        output.append(contentsOf: word.map { latinLookAlikes[$0] ?? $0 })
      } else {
        output.append(contentsOf: word)
      }
    }
    for scalar in text.unicodeScalars {
      if scalar.properties.isAlphabetic || scalar.properties.generalCategory == .nonspacingMark {
        word.append(scalar)
      } else {
        flush()
        output.append(scalar)
      }
    }
    flush()
    return String(output)
  }
}
