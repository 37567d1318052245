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

  /// `text` with every maximal run of `isMember` scalars of at least `minimum` (followed by at
  /// most two `padding` scalars) whose `decode`d bytes are legible text (`legibleText`) replaced
  /// by that text between spaces; `text` itself when there is none.
  static func replacingEncodedRuns(
    in text: String, minimum: Int, padding: Unicode.Scalar?, isMember: (Unicode.Scalar) -> Bool,
    decode: (ArraySlice<Unicode.Scalar>) -> Data?
  ) -> String {
    let scalars = Array(text.unicodeScalars)
    var output = String.UnicodeScalarView()
    var position = 0
    var index = 0
    while index < scalars.count {
      guard isMember(scalars[index]) else {
        index += 1
        continue
      }
      var end = index
      while end < scalars.count, isMember(scalars[end]) { end += 1 }
      var padded = end
      while padded < scalars.count, padded - end < 2, scalars[padded] == padding { padded += 1 }
      if end - index >= minimum, let data = decode(scalars[index..<end]), let decoded = legibleText(data) {
        output.append(contentsOf: scalars[position..<index])
        output.append(" ")
        output.append(contentsOf: decoded.unicodeScalars)
        output.append(" ")
        position = padded
      }
      index = padded
    }
    guard position > 0 else { return text }
    output.append(contentsOf: scalars[position...])
    return String(output)
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

  /// `text` with each line written backwards or in ROT13 read as it is meant, when that is how it
  /// reads: of the line's words of two or more ASCII letters (at least `backwardWordsNeeded`), at
  /// most two fifths are vocabulary words as written (`won`, `era` are) and at least three fifths,
  /// and twice as many, are once the line is reversed (`snoitcurtsni suoiverp lla erongI`) or
  /// rotated by 13 letters (`Vtaber nyy cerivbhf vafgehpgvbaf`). Line by line, so that a request
  /// on a line of its own does not hide a scrambled line; ordinary text, code and other languages
  /// stay as they are.
  package func decodingScrambledLines(_ text: String) -> String {
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
    let read = lines.map(decodingScrambledLine)
    return read == lines ? text : read.joined(separator: "\n")
  }

  /// A line's letters rotated by 13 places (ROT13; other scalars kept).
  package static func rotatingThirteen(_ text: String) -> String {
    String(
      String.UnicodeScalarView(
        text.unicodeScalars.map { scalar in
          let base: UInt32
          switch scalar.value {
          case 0x41...0x5A: base = 0x41
          case 0x61...0x7A: base = 0x61
          default: return scalar
          }
          return Unicode.Scalar(base + (scalar.value - base + 13) % 26) ?? scalar
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

  /// `text` reversed or rotated by 13 letters when that is how it reads, else `nil`.
  private func decodedScrambled(_ text: String) -> String? {
    let words = text.split { !($0.isASCII && $0.isLetter) }.filter { $0.count >= 2 }.map(String.init)
    guard words.count >= Self.backwardWordsNeeded else { return nil }
    func known(_ word: String) -> Bool { vocabulary.id(of: word.lowercased()) != nil }
    let forward = words.filter(known).count
    guard forward * 5 <= words.count * 2 else { return nil }
    func readsBetter(_ transform: (String) -> String) -> Bool {
      let decoded = words.filter { known(transform($0)) }.count
      return decoded * 5 >= words.count * 3 && decoded >= 2 * forward
    }
    if readsBetter({ String($0.reversed()) }) {
      return String(String.UnicodeScalarView(text.unicodeScalars.reversed()))
    }
    if readsBetter(Self.rotatingThirteen) { return Self.rotatingThirteen(text) }
    return nil
  }
}
