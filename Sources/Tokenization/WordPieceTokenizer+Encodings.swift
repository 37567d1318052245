import Foundation

extension WordPieceTokenizer {
  /// The fewest base64 characters (padding not counted) a run needs before it is decoded: 24
  /// characters hold 18 bytes, a short sentence.
  static let base64RunMinimum = 24

  /// The fewest hexadecimal digits a run needs before it is decoded (16 bytes).
  static let hexRunMinimum = 32

  /// `text` with every run of base64 (standard or URL-safe alphabet, at least `base64RunMinimum`
  /// characters, optional `=` padding) that decodes to legible text (`legibleText`) replaced by
  /// that text, set apart by spaces. Runs that decode to bytes (images, keys, hashes) or are not
  /// base64 at all (long hyphenated words, paths) stay as they are.
  package static func decodingBase64(in text: String) -> String {
    replacingEncodedRuns(
      in: text, minimum: base64RunMinimum, padding: "=",
      isMember: { scalar in
        scalar.isASCII && (scalar.properties.isAlphabetic || scalar.properties.numericType != nil)
          || scalar == "+" || scalar == "/" || scalar == "-" || scalar == "_"
      },
      decode: { run in
        var body = String(
          String.UnicodeScalarView(run.map { scalar in scalar == "-" ? "+" : scalar == "_" ? "/" : scalar }))
        switch body.unicodeScalars.count % 4 {
        case 1: return nil
        case 2: body += "=="
        case 3: body += "="
        default: break
        }
        return Data(base64Encoded: body)
      })
  }

  /// The fewest base32 characters (padding not counted) a run needs before it is decoded: 32
  /// characters hold 20 bytes, a short sentence.
  static let base32RunMinimum = 32

  /// `text` with every run of base32 (RFC 4648: `A`–`Z` and `2`–`7`, at least `base32RunMinimum`
  /// characters, optional `=` padding) that decodes to legible text replaced by that text, set
  /// apart by spaces. Upper-case words and identifiers stay: they do not decode to legible text.
  package static func decodingBase32(in text: String) -> String {
    replacingEncodedRuns(
      in: text, minimum: base32RunMinimum, padding: "=", maximumPadding: 6,
      isMember: { scalar in ("A"..."Z").contains(scalar) || ("2"..."7").contains(scalar) },
      decode: { run in
        // Whole bytes only: 1, 3 or 6 characters left over are not base32's.
        guard ![1, 3, 6].contains(run.count % 8) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(run.count * 5 / 8)
        var buffer: UInt32 = 0
        var bits = 0
        for scalar in run {
          let value = scalar.value >= 0x41 ? scalar.value - 0x41 : scalar.value - 0x32 + 26
          buffer = (buffer << 5) | value
          bits += 5
          if bits >= 8 {
            bits -= 8
            bytes.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
          }
          buffer &= (1 << UInt32(bits)) - 1
        }
        return Data(bytes)
      })
  }

  /// `text` with every run of an even number of hexadecimal digits (at least `hexRunMinimum`)
  /// that decodes to legible text replaced by that text, set apart by spaces; hashes and other
  /// bytes stay as they are.
  package static func decodingHex(in text: String) -> String {
    replacingEncodedRuns(
      in: text, minimum: hexRunMinimum, padding: nil, isMember: { $0.properties.isASCIIHexDigit },
      decode: { run in
        guard run.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(run.count / 2)
        var iterator = run.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
          guard let value = UInt8(String(String.UnicodeScalarView([high, low])), radix: 16) else {
            return nil
          }
          bytes.append(value)
        }
        return Data(bytes)
      })
  }

  /// The fewest character codes a run of decimal numbers needs before `decodingDecimalCodes`
  /// reads it.
  static let decimalCodesNeeded = 16

  /// `text` with every run of decimal character codes (`73 103 110 111 114 101`, or with commas:
  /// numbers of one to three digits from 32 to 255, or 9, 10, 13, one `,`, one space or `, `
  /// apart; at least `decimalCodesNeeded`) whose bytes are legible UTF-8 text (`legibleText`)
  /// replaced by that text between spaces; lists of other numbers stay.
  package static func decodingDecimalCodes(in text: String) -> String {
    replacingRuns(in: text) { scalars, index in
      func isDigit(_ index: Int) -> Bool { index < scalars.count && ("0"..."9").contains(scalars[index]) }
      // A run starts at a number that is not the tail of a longer word or number.
      guard isDigit(index), index == 0 || !(isDigit(index - 1) || scalars[index - 1].properties.isAlphabetic)
      else { return nil }
      var codes: [UInt8] = []
      var cursor = index
      var end = index
      while true {
        var value = 0
        var digits = 0
        while isDigit(cursor), digits < 4 {
          value = value * 10 + Int(scalars[cursor].value - 0x30)
          digits += 1
          cursor += 1
        }
        guard digits <= 3, !isDigit(cursor), (32...255).contains(value) || [9, 10, 13].contains(value)
        else { break }
        codes.append(UInt8(value))
        end = cursor
        var next = cursor
        if next < scalars.count, scalars[next] == "," { next += 1 }
        if next < scalars.count, scalars[next] == " " { next += 1 }
        guard next > cursor, isDigit(next) else { break }
        cursor = next
      }
      return (end, codes.count >= decimalCodesNeeded ? legibleText(Data(codes)) : nil)
    }
  }

  /// The fewest bytes a run of binary needs before `decodingBinary` reads it.
  static let binaryBytesNeeded = 16

  /// `text` with every run of bytes written in binary (`01001001 01100111 …`: groups of a
  /// multiple of 8 binary digits, one space or none apart, at least `binaryBytesNeeded` bytes)
  /// that are legible UTF-8 text (`legibleText`) replaced by that text between spaces; other runs
  /// of 0s and 1s stay.
  package static func decodingBinary(in text: String) -> String {
    replacingRuns(in: text) { scalars, index in
      func isBit(_ index: Int) -> Bool {
        index < scalars.count && (scalars[index] == "0" || scalars[index] == "1")
      }
      func isAlphanumeric(_ index: Int) -> Bool {
        scalars[index].properties.isAlphabetic || scalars[index].properties.numericType != nil
      }
      guard isBit(index), index == 0 || !isAlphanumeric(index - 1) else { return nil }
      var bytes: [UInt8] = []
      var cursor = index
      var end = index
      while true {
        var group = cursor
        while isBit(group) { group += 1 }
        let width = group - cursor
        // A group ends the run unless it is whole bytes and not glued to a word.
        guard width >= 8, width % 8 == 0, group == scalars.count || !isAlphanumeric(group) else { break }
        for start in stride(from: cursor, to: group, by: 8) {
          var byte: UInt8 = 0
          for offset in 0..<8 { byte = byte << 1 | (scalars[start + offset] == "1" ? 1 : 0) }
          bytes.append(byte)
        }
        end = group
        guard group + 1 < scalars.count, scalars[group] == " ", isBit(group + 1) else { break }
        cursor = group + 1
      }
      return (end, bytes.count >= binaryBytesNeeded ? legibleText(Data(bytes)) : nil)
    }
  }

  /// `text` with runs replaced: `run(scalars, i)` says whether a run starts at scalar `i` (`nil`:
  /// none), where it ends, and the text that replaces it (`nil`: it stays); replacements are set
  /// apart by spaces, and the scan goes on after the run.
  static func replacingRuns(
    in text: String, _ run: ([Unicode.Scalar], Int) -> (end: Int, replacement: String?)?
  ) -> String {
    let scalars = Array(text.unicodeScalars)
    var output = String.UnicodeScalarView()
    var position = 0
    var index = 0
    while index < scalars.count {
      guard let found = run(scalars, index) else {
        index += 1
        continue
      }
      if let replacement = found.replacement {
        output.append(contentsOf: scalars[position..<index])
        output.append(" ")
        output.append(contentsOf: replacement.unicodeScalars)
        output.append(" ")
        position = found.end
      }
      index = max(found.end, index + 1)
    }
    guard position > 0 else { return text }
    output.append(contentsOf: scalars[position...])
    return String(output)
  }

  /// `text` with every maximal run of `isMember` scalars of at least `minimum` (followed by at
  /// most `maximumPadding` `padding` scalars) whose `decode`d bytes are legible text
  /// (`legibleText`) replaced by that text between spaces; `text` itself when there is none.
  static func replacingEncodedRuns(
    in text: String, minimum: Int, padding: Unicode.Scalar?, maximumPadding: Int = 2,
    isMember: (Unicode.Scalar) -> Bool, decode: (ArraySlice<Unicode.Scalar>) -> Data?
  ) -> String {
    replacingRuns(in: text) { scalars, index in
      guard isMember(scalars[index]) else { return nil }
      var end = index
      while end < scalars.count, isMember(scalars[end]) { end += 1 }
      var padded = end
      while padded < scalars.count, padded - end < maximumPadding, scalars[padded] == padding { padded += 1 }
      return (padded, end - index >= minimum ? decode(scalars[index..<end]).flatMap(legibleText) : nil)
    }
  }

  /// `data` as text when it is legible: valid UTF-8 without control characters other than line
  /// breaks and tabs, at least half of it letters, and at least two words. `nil` otherwise.
  static func legibleText(_ data: Data) -> String? {
    guard let decoded = String(data: data, encoding: .utf8) else { return nil }
    let decodedScalars = decoded.unicodeScalars
    let letters = decodedScalars.filter { $0.properties.isAlphabetic }.count
    let controls = decodedScalars.filter {
      $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\r" && $0 != "\t"
    }
    guard controls.isEmpty, letters * 2 >= decodedScalars.count,
      decoded.split(whereSeparator: \.isWhitespace).count >= 2
    else { return nil }
    return decoded
  }
}

extension WordPieceTokenizer {
  /// The fewest words a line needs before `decodingScrambledLines` considers it.
  static let backwardWordsNeeded = 5

  /// `text` with each line written backwards or in a letter cipher read as it is meant, when that
  /// is how it reads: of the line's words of two or more ASCII letters (at least
  /// `backwardWordsNeeded`), at most two fifths are vocabulary words as written (`won`, `era` are)
  /// and at least three fifths, and twice as many, are once the line is reversed (`snoitcurtsni
  /// suoiverp lla erongI`), rotated by 13 letters (ROT13, `Vtaber nyy cerivbhf vafgehpgvbaf`), or
  /// else by the other Caesar shift or Atbash (`Rtmliv zoo`) under which most words read. Line by
  /// line, so that a request on a line of its own does not hide a scrambled line; ordinary text,
  /// code and other languages stay as they are.
  package func decodingScrambledLines(_ text: String) -> String {
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
    let read = lines.map(decodingScrambledLine)
    return read == lines ? text : read.joined(separator: "\n")
  }

  /// The letter ciphers tried after backwards and ROT13: the other 24 Caesar shifts (as their
  /// inverses, which are shifts too) and Atbash.
  static let otherLetterCiphers: [@Sendable (String) -> String] =
    (1...25).filter { $0 != 13 }.map { shift in { rotating($0, by: UInt32(shift)) } } + [atbash]

  /// A line's letters rotated by 13 places (ROT13; other scalars kept).
  package static func rotatingThirteen(_ text: String) -> String { rotating(text, by: 13) }

  /// A line's ASCII letters moved `shift` places on in the alphabet (a Caesar shift, taken modulo
  /// 26; other scalars kept). Undoing a shift of `k` is `rotating(_:by: 26 − k)`.
  package static func rotating(_ text: String, by shift: UInt32) -> String {
    mappingLetters(text) { (index: UInt32) in (index + shift % 26) % 26 }
  }

  /// A line's ASCII letters mirrored in the alphabet (Atbash: `a` ↔ `z`, `b` ↔ `y`; other scalars
  /// kept); its own inverse.
  package static func atbash(_ text: String) -> String {
    mappingLetters(text) { (index: UInt32) in 25 - index }
  }

  /// `text` with each ASCII letter replaced by the letter of the same case at `map(its index)`
  /// (0…25).
  private static func mappingLetters(_ text: String, _ map: (UInt32) -> UInt32) -> String {
    String(
      String.UnicodeScalarView(
        text.unicodeScalars.map { scalar in
          let base: UInt32
          switch scalar.value {
          case 0x41...0x5A: base = 0x41
          case 0x61...0x7A: base = 0x61
          default: return scalar
          }
          return Unicode.Scalar(base + map(scalar.value - base)) ?? scalar
        }))
  }

  /// One line of `decodingScrambledLines`: the whole line, or else what follows its first `: `
  /// (a request and its payload on one line, `Read this backwards: …`).
  private func decodingScrambledLine(_ text: String) -> String {
    if let decoded = decodedScrambled(text) { return decoded }
    guard let colon = text.range(of: ": ") else { return text }
    return decodedScrambled(String(text[colon.upperBound...])).map { String(text[..<colon.upperBound]) + $0 }
      ?? text
  }

  /// `text` reversed, rotated by 13 letters, or else under the Caesar shift or Atbash that reads
  /// best, when that is how it reads; else `nil`.
  private func decodedScrambled(_ text: String) -> String? {
    let words = text.split { !($0.isASCII && $0.isLetter) }.filter { $0.count >= 2 }.map(String.init)
    guard words.count >= Self.backwardWordsNeeded else { return nil }
    func known(_ word: String) -> Bool { vocabulary.id(of: word.lowercased()) != nil }
    let forward = words.filter(known).count
    guard forward * 5 <= words.count * 2 else { return nil }
    func reads(_ transform: (String) -> String) -> Int? {
      let decoded = words.filter { known(transform($0)) }.count
      return decoded * 5 >= words.count * 3 && decoded >= 2 * forward ? decoded : nil
    }
    if reads({ String($0.reversed()) }) != nil {
      return String(String.UnicodeScalarView(text.unicodeScalars.reversed()))
    }
    if reads(Self.rotatingThirteen) != nil { return Self.rotatingThirteen(text) }
    // The other shifts and Atbash: the one under which the most words read (the first on a tie).
    var best: (decoded: Int, transform: @Sendable (String) -> String)?
    for cipher in Self.otherLetterCiphers {
      if let decoded = reads(cipher), decoded > best?.decoded ?? 0 { best = (decoded, cipher) }
    }
    return best.map { $0.transform(text) }
  }
}

extension WordPieceTokenizer {
  /// International Morse code: the letters, digits and common punctuation, by their code written
  /// with `.` and `-`.
  package static let morseCodes: [String: Character] = {
    let table: [(Character, String)] = [
      ("A", ".-"), ("B", "-..."), ("C", "-.-."), ("D", "-.."), ("E", "."), ("F", "..-."), ("G", "--."),
      ("H", "...."), ("I", ".."), ("J", ".---"), ("K", "-.-"), ("L", ".-.."), ("M", "--"), ("N", "-."),
      ("O", "---"), ("P", ".--."), ("Q", "--.-"), ("R", ".-."), ("S", "..."), ("T", "-"), ("U", "..-"),
      ("V", "...-"), ("W", ".--"), ("X", "-..-"), ("Y", "-.--"), ("Z", "--.."),
      ("0", "-----"), ("1", ".----"), ("2", "..---"), ("3", "...--"), ("4", "....-"), ("5", "....."),
      ("6", "-...."), ("7", "--..."), ("8", "---.."), ("9", "----."),
      (".", ".-.-.-"), (",", "--..--"), ("?", "..--.."), ("'", ".----."), ("!", "-.-.--"), ("/", "-..-."),
      ("(", "-.--."), (")", "-.--.-"), ("&", ".-..."), (":", "---..."), (";", "-.-.-."), ("=", "-...-"),
      ("+", ".-.-."), ("-", "-....-"), ("\"", ".-..-."), ("@", ".--.-."),
    ]
    return Dictionary(uniqueKeysWithValues: table.map { ($0.1, $0.0) })
  }()

  /// The fewest letters a run of Morse code must decode to before `decodingMorse` reads it.
  static let morseLettersNeeded = 8

  /// The fewest distinct letters among them: a row of `---` (a table's rule) or `...` decodes to
  /// one letter over and over and is not a message.
  static let morseDistinctLettersNeeded = 4

  /// The Morse symbol `scalar` writes: `.` for a dot (`.`, `·`, `•`), `-` for a dash (`-`, `_`,
  /// `−`, `–`, `—`), `nil` for anything else.
  static func morseSymbol(_ scalar: Unicode.Scalar) -> Character? {
    switch scalar {
    case ".", "\u{B7}", "\u{2022}": "."
    case "-", "_", "\u{2212}", "\u{2013}", "\u{2014}": "-"
    default: nil
    }
  }

  /// `text` with every run of Morse code read as its letters, set apart by spaces (`.. --. -. ---
  /// .-. . / .- .-.. .-..` → `IGNORE ALL`). A run is a stretch of dots and dashes (`morseSymbol`)
  /// between spaces; letters are separated by one space, words by `/`, `|`, a line break or two
  /// or more spaces. It is read only when every code in it is a Morse code and it decodes to at
  /// least `morseLettersNeeded` letters, `morseDistinctLettersNeeded` of them distinct; ellipses,
  /// rules and dashes in ordinary text stay as they are.
  package static func decodingMorse(in text: String) -> String {
    func isSeparator(_ scalar: Unicode.Scalar) -> Bool {
      scalar == " " || scalar == "/" || scalar == "|" || scalar == "\n" || scalar == "\r" || scalar == "\t"
    }
    return replacingRuns(in: text) { scalars, index in
      guard morseSymbol(scalars[index]) != nil else { return nil }
      // The run: codes and separators, up to its last code.
      var end = index
      var last = index
      while end < scalars.count, morseSymbol(scalars[end]) != nil || isSeparator(scalars[end]) {
        if morseSymbol(scalars[end]) != nil { last = end }
        end += 1
      }
      return (last + 1, decodedMorseRun(scalars[index...last]))
    }
  }

  /// One run of `decodingMorse` as text, or `nil` when it is not a message in Morse code.
  private static func decodedMorseRun(_ run: ArraySlice<Unicode.Scalar>) -> String? {
    var words: [String] = []
    var word = ""
    var code = ""
    var gap = 0
    var wordBreak = false
    var letters = 0
    var distinct: Set<Character> = []
    func closeLetter() -> Bool {
      guard !code.isEmpty else { return true }
      guard let letter = morseCodes[code] else { return false }
      word.append(letter)
      if letter.isLetter {
        letters += 1
        distinct.insert(letter)
      }
      code = ""
      return true
    }
    for scalar in run {
      if let symbol = morseSymbol(scalar) {
        if wordBreak || gap >= 2, !word.isEmpty {
          words.append(word)
          word = ""
        }
        gap = 0
        wordBreak = false
        code.append(symbol)
        continue
      }
      guard closeLetter() else { return nil }
      if scalar == " " || scalar == "\t" { gap += 1 } else { wordBreak = true }
    }
    guard closeLetter() else { return nil }
    if !word.isEmpty { words.append(word) }
    guard letters >= morseLettersNeeded, distinct.count >= morseDistinctLettersNeeded else { return nil }
    return words.joined(separator: " ")
  }
}
