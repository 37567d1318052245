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
  ///    text uses, is left alone);
  /// 2. look-alike Cyrillic or Greek letters inside a Latin word (`Ignоre` with a Cyrillic `о`):
  ///    in words that mix Latin letters with such look-alikes, the look-alikes become their Latin
  ///    letters (words wholly in another script are left alone, so Russian or Greek text stays);
  /// 3. words too long for WordPiece (`respacingLongWords`).
  ///
  /// The result is returned only when its word pieces differ from those of `text`. Only the
  /// detector's extra reading uses it (`EmbeddingProvider.chunkInputs`); `pieceIDs(for:)` keeps the
  /// reference tokenizer's output.
  public func alternateReading(_ text: String) -> String? {
    var reading = Self.foldingCompatibilityLetters(in: text)
    reading = Self.foldingLookAlikes(in: reading)
    reading = respacingLongWords(reading) ?? reading
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

  /// `text` with every `isCompatibilityLetter` scalar replaced by its NFKC form.
  static func foldingCompatibilityLetters(in text: String) -> String {
    guard text.unicodeScalars.contains(where: isCompatibilityLetter) else { return text }
    var output = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      if isCompatibilityLetter(scalar) {
        output.append(contentsOf: String(scalar).precomposedStringWithCompatibilityMapping.unicodeScalars)
      } else {
        output.append(scalar)
      }
    }
    return String(output)
  }

  /// `text` with the look-alike letters of every word that also has Latin letters made Latin.
  static func foldingLookAlikes(in text: String) -> String {
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
