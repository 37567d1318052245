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

  /// Small capital letters (`ᴀ`, `ʙ`, …, as "small caps" text generators write them) and the Latin
  /// letters they show; they have no NFKC form.
  static let smallCapitals: [Unicode.Scalar: Unicode.Scalar] = {
    let capitals = "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ"
    let letters = "abcdefghijklmnoprstuvwyz"
    var map: [Unicode.Scalar: Unicode.Scalar] = [:]
    for (from, to) in zip(capitals.unicodeScalars, letters.unicodeScalars) { map[from] = to }
    return map
  }()

  /// The fewest letters, spelled out one by one, before `joiningSpelledLetters` joins them.
  static let spelledLettersNeeded = 10

  /// How a reader would see `text` when the tokenizer would not, or `nil` when the two agree.
  ///
  /// Disguises leave a prompt legible to a language model but not to this tokenizer, and are
  /// undone here, in order (after decimal character codes, binary, hexadecimal, base64 and
  /// base32 that decode to legible text are decoded, `decodingDecimalCodes`, `decodingBinary`,
  /// `decodingHex`, `decodingBase64`, `decodingBase32`, Morse code, Braille and the NATO spelling
  /// alphabet are read, `decodingMorse`, `foldingBraille`, `readingSpellingAlphabet`, and lines
  /// written backwards, in ROT13 or in another Caesar shift or Atbash are read as meant,
  /// `decodingScrambledLines`):
  /// 1. compatibility forms of letters and digits (full-width `Ｉｇｎｏｒｅ`, mathematical `𝐈𝐠𝐧𝐨𝐫𝐞`,
  ///    circled `Ⓘ`): their NFKC forms (`isCompatibilityLetter`; full-width punctuation, which CJK
  ///    text uses, is left alone), and the letters that negative circled or squared letters and
  ///    regional indicators show (`🅸🅶🅽🅾🆁🅴`, `🇮🇬🇳🇴🇷🇪`), which have no NFKC form;
  /// 2. look-alike Cyrillic or Greek letters inside a Latin word (`Ignоre` with a Cyrillic `о`):
  ///    in words that mix Latin letters with such look-alikes, the look-alikes become their Latin
  ///    letters (words wholly in another script are left alone, so Russian or Greek text stays);
  ///    and words written in small capitals (`ɪɢɴᴏʀᴇ`), whose letters are all small capitals or
  ///    Latin, become Latin;
  /// 3. leetspeak (`1gn0r3 4ll pr3v10u5 …`), when at least three words read as vocabulary words
  ///    once their digits are letters (`foldingLeetspeak`);
  /// 4. one letter or digit glued to the start or end of most words (`ÿIgnore ÿall ÿprevious`),
  ///    which WordPiece reads as other pieces: dropped from the words it spoils
  ///    (`strippingGluedFillers`);
  /// 5. words spelled out letter by letter (`I g n o r e`, `I.g.n.o.r.e`), when at least
  ///    `spelledLettersNeeded` letters are (`joiningSpelledLetters`);
  /// 6. words too long for WordPiece (`respacingLongWords`).
  ///
  /// The result is returned only when its word pieces differ from those of `text`. Only the
  /// detector's extra reading uses it (`EmbeddingProvider.chunkInputs`); `pieceIDs(for:)` keeps the
  /// reference tokenizer's output.
  public func alternateReading(_ text: String) -> String? {
    let numbers = Self.decodingBinary(in: Self.decodingDecimalCodes(in: text))
    let decoded = Self.decodingBase32(in: Self.decodingBase64(in: Self.decodingHex(in: numbers)))
    let spelled = Self.readingSpellingAlphabet(in: Self.foldingBraille(in: Self.decodingMorse(in: decoded)))
    var reading = decodingScrambledLines(spelled)
    reading = Self.foldingCompatibilityLetters(in: reading)
    reading = Self.foldingLookAlikes(in: reading)
    reading = foldingLeetspeak(in: reading)
    reading = strippingGluedFillers(in: reading)
    reading = Self.joiningSpelledLetters(in: reading)
    reading = respacingLongWords(reading) ?? reading
    // Most prompts come back unchanged: no tokenization then.
    guard reading != text else { return nil }
    return pieceIDs(for: reading) == pieceIDs(for: text) ? nil : reading
  }

  /// Whether `scalar` is a compatibility form of a letter or digit used to disguise Latin text:
  /// full-width letters and digits (not full-width punctuation, which CJK text uses), enclosed
  /// alphanumerics (`Ⓘ`, `①`, `🄸`), mathematical alphanumerics (`𝐈`, `𝘐`, `𝕀`) and superscript
  /// or subscript letters (`ᴵᵍⁿᵒʳᵉ`; not superscript digits, which formulas use).
  static func isCompatibilityLetter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0xFF10...0xFF19, 0xFF21...0xFF3A, 0xFF41...0xFF5A: true
    case 0x2460...0x24FF, 0x1F100...0x1F1FF, 0x1D400...0x1D7FF: true
    case 0x1D2C...0x1D6A, 0x1D9B...0x1DBF, 0x02B0...0x02B8, 0x02E0...0x02E4: true
    case 0x2071, 0x207F, 0x2090...0x209C: true
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

  /// The fewest words a glued filler must spoil before `strippingGluedFillers` drops it.
  static let gluedWordsNeeded = 4

  /// `text` with a glued filler dropped: one scalar (a letter or digit, of any script) written at
  /// the start, or at the end, of words so that WordPiece no longer reads them (`ÿIgnore ÿall
  /// ÿprevious …` reads as `yi ##gno ##re …`). A word is spoiled by filler `f` when it is a run of
  /// letters and digits that starts (ends) with `f`, is not a vocabulary word in lower case, and
  /// without `f` is a vocabulary word of at least three ASCII letters. The filler that spoils the
  /// most words is dropped from those words when they number at least `gluedWordsNeeded` and at
  /// least half of the text's words of three letters or more; a program's `pData, pNext, pHead`
  /// among its other identifiers, or a name or two, stay as written.
  package func strippingGluedFillers(in text: String) -> String {
    let scalars = Array(text.unicodeScalars)
    let isWordScalar = { (scalar: Unicode.Scalar) in
      scalar.properties.isAlphabetic || scalar.properties.numericType != nil
    }
    var words: [Range<Int>] = []
    var start: Int?
    for (index, scalar) in scalars.enumerated() {
      if isWordScalar(scalar) {
        if start == nil { start = index }
      } else if let first = start {
        words.append(first..<index)
        start = nil
      }
    }
    if let first = start { words.append(first..<scalars.count) }
    let longWords = words.filter { $0.count >= 3 }.count
    guard longWords >= Self.gluedWordsNeeded else { return text }
    func isVocabularyWord(_ word: ArraySlice<Unicode.Scalar>) -> Bool {
      vocabulary.id(of: String(String.UnicodeScalarView(word)).lowercased()) != nil
    }
    // For each (filler, side): the spoiled words, as the position of the filler to drop.
    struct Filler: Hashable {
      let scalar: Unicode.Scalar
      let atStart: Bool
    }
    var spoiled: [Filler: [Int]] = [:]
    for word in words where word.count >= 4 {
      let whole = scalars[word]
      guard !isVocabularyWord(whole) else { continue }
      for atStart in [true, false] {
        let filler = atStart ? scalars[word.lowerBound] : scalars[word.upperBound - 1]
        let rest =
          atStart
          ? scalars[(word.lowerBound + 1)..<word.upperBound]
          : scalars[word.lowerBound..<(word.upperBound - 1)]
        guard rest.allSatisfy({ $0.isASCII && $0.properties.isAlphabetic }), isVocabularyWord(rest) else {
          continue
        }
        spoiled[Filler(scalar: filler, atStart: atStart), default: []].append(
          atStart ? word.lowerBound : word.upperBound - 1)
      }
    }
    guard
      // Ties go to the start, then to the smaller scalar: the same reading in every run
      // (a dictionary's order is not).
      let (_, positions) = spoiled.max(by: {
        ($0.value.count, $0.key.atStart ? 1 : 0, $1.key.scalar.value)
          < ($1.value.count, $1.key.atStart ? 1 : 0, $0.key.scalar.value)
      }),
      positions.count >= Self.gluedWordsNeeded, 2 * positions.count >= longWords
    else { return text }
    let dropped = Set(positions)
    var output = String.UnicodeScalarView()
    for (index, scalar) in scalars.enumerated() where !dropped.contains(index) { output.append(scalar) }
    return String(output)
  }

  /// `text` with the look-alike letters of every word that also has Latin letters made Latin, and
  /// every word of small capitals and Latin letters only (`ɪɢɴᴏʀᴇ`) in Latin letters.
  static func foldingLookAlikes(in text: String) -> String {
    guard text.unicodeScalars.contains(where: { latinLookAlikes[$0] != nil || smallCapitals[$0] != nil })
    else { return text }
    var output = String.UnicodeScalarView()
    var word: [Unicode.Scalar] = []
    func flush() {
      defer { word.removeAll(keepingCapacity: true) }
      let isLatin = { (scalar: Unicode.Scalar) in scalar.isASCII && scalar.properties.isAlphabetic }
      let hasLatin = word.contains(where: isLatin)
      let hasLookAlike = word.contains { latinLookAlikes[$0] != nil }
      let inSmallCapitals =
        word.contains { smallCapitals[$0] != nil }
        && word.allSatisfy { isLatin($0) || smallCapitals[$0] != nil }
      if hasLatin && hasLookAlike {
        output.append(contentsOf: word.map { latinLookAlikes[$0] ?? $0 })
      } else if inSmallCapitals {
        output.append(contentsOf: word.map { smallCapitals[$0] ?? $0 })
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

  /// Separators between the letters of a word spelled out one by one.
  static let letterSeparators: Set<Unicode.Scalar> = [" ", ".", "-", "_", "*", "·"]

  /// `text` with words spelled out letter by letter joined: a run of single ASCII letters (no
  /// letter or digit next to them), each one separator (`letterSeparators`, the same throughout the
  /// run) from the next (`I g n o r e`, `I.g.n.o.r.e`, `I-g-n-o-r-e`), becomes the word it spells,
  /// provided the runs of at least three letters hold `spelledLettersNeeded` letters in all. What
  /// lies between two runs is kept (`a l l  r u l e s` → `all  rules`); a one-letter word between
  /// ordinary words (`and a cat`) stays as it is, and so do initials in ordinary text (`U.S.A.`,
  /// `e.g.`), which only count when runs of three letters or more reach the minimum.
  package static func joiningSpelledLetters(in text: String) -> String {
    let scalars = Array(text.unicodeScalars)
    func isAlphanumeric(_ index: Int) -> Bool {
      guard scalars.indices.contains(index) else { return false }
      let scalar = scalars[index]
      return scalar.properties.isAlphabetic || scalar.properties.numericType != nil
    }
    func isSingleLetter(_ index: Int) -> Bool {
      scalars.indices.contains(index) && scalars[index].isASCII && scalars[index].properties.isAlphabetic
        && !isAlphanumeric(index - 1) && !isAlphanumeric(index + 1)
    }
    // Runs of single letters one separator apart, as ranges of scalar indices; one separator per
    // run (`I.g.n.o.r.e a-l-l` is two words). Runs joined by punctuation are found first, so that
    // a one-letter word before one (`make a w.e.a.p.o.n`) is not taken as a letter of a spaced run.
    var runs: [ClosedRange<Int>] = []
    var claimed = [Bool](repeating: false, count: scalars.count)
    for pass in [letterSeparators.subtracting([" "]), [" "]] {
      var index = 0
      while index < scalars.count {
        guard isSingleLetter(index), !claimed[index], scalars.indices.contains(index + 1),
          pass.contains(scalars[index + 1])
        else {
          index += 1
          continue
        }
        let separator = scalars[index + 1]
        var end = index
        while end + 2 < scalars.count, scalars[end + 1] == separator, isSingleLetter(end + 2),
          !claimed[end + 2]
        {
          end += 2
        }
        if end > index {
          runs.append(index...end)
          for position in index...end { claimed[position] = true }
        }
        index = end + 1
      }
    }
    runs.sort { $0.lowerBound < $1.lowerBound }
    let spelled = runs.filter { $0.count >= 5 }.reduce(0) { $0 + ($1.count + 1) / 2 }
    guard spelled >= spelledLettersNeeded else { return text }
    var output = String.UnicodeScalarView()
    var position = 0
    for run in runs {
      output.append(contentsOf: scalars[position..<run.lowerBound])
      output.append(
        contentsOf: stride(from: run.lowerBound, through: run.upperBound, by: 2).map { scalars[$0] })
      position = run.upperBound + 1
    }
    output.append(contentsOf: scalars[position...])
    return String(output)
  }
}
