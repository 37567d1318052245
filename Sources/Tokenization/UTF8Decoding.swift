/// Strict UTF-8 decoding that reports where the input goes wrong.
enum UTF8Decoding {
  /// Decodes well-formed UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
  ///
  /// - Returns: The scalars of `bytes`.
  /// - Throws: `invalidUTF8`, with the byte offset of the first ill-formed sequence.
  /// - Complexity: O(n).
  static func scalars(of bytes: some Collection<UInt8>) throws(TokenizationError) -> [Unicode.Scalar] {
    let array = Array(bytes)
    var scalars: [Unicode.Scalar] = []
    scalars.reserveCapacity(array.count)
    var index = 0
    while index < array.count {
      let lead = array[index]
      if lead < 0x80 {
        scalars.append(Unicode.Scalar(lead))
        index += 1
        continue
      }
      let length: Int
      let minimum: UInt32
      var value: UInt32
      switch lead {
      case 0xC2...0xDF: (length, minimum, value) = (2, 0x80, UInt32(lead & 0x1F))
      case 0xE0...0xEF: (length, minimum, value) = (3, 0x800, UInt32(lead & 0x0F))
      case 0xF0...0xF4: (length, minimum, value) = (4, 0x10000, UInt32(lead & 0x07))
      default: throw invalid(at: index, "byte 0x\(hex(lead)) cannot start a sequence")
      }
      guard index + length <= array.count else {
        throw invalid(at: index, "truncated \(length)-byte sequence at end of input")
      }
      for offset in 1..<length {
        let byte = array[index + offset]
        guard byte & 0xC0 == 0x80 else {
          throw invalid(at: index + offset, "expected a continuation byte, found 0x\(hex(byte))")
        }
        value = value << 6 | UInt32(byte & 0x3F)
      }
      guard value >= minimum, let scalar = Unicode.Scalar(value) else {
        throw invalid(at: index, "overlong, surrogate or out-of-range sequence")
      }
      scalars.append(scalar)
      index += length
    }
    return scalars
  }

  private static func invalid(at offset: Int, _ detail: String) -> TokenizationError {
    TokenizationError(.invalidUTF8, "invalid UTF-8 at byte offset \(offset): \(detail)")
  }

  private static func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return digits.count == 1 ? "0" + digits : digits
  }
}
