/// Character classes of the BERT basic tokenizer, as the Hugging Face `tokenizers` library
/// applies them. All functions look at single Unicode scalars.
enum UnicodeClasses {
  /// Whether the reference deletes `scalar`: U+0000, U+FFFD, controls (except tab, line feed
  /// and carriage return, which are whitespace), formats, private use, and non-spacing marks.
  ///
  /// The set comes from the reference tokenizer (see `referenceDroppedScalarRanges`) rather than
  /// from Swift's Unicode tables, which are newer than the ones the reference was built with.
  /// - Complexity: O(1) for ASCII, O(log r) for r ranges otherwise.
  static func isDropped(_ scalar: Unicode.Scalar) -> Bool {
    let value = scalar.value
    if value < 0x80 {
      return (value < 0x20 && value != 0x09 && value != 0x0A && value != 0x0D) || value == 0x7F
    }
    return contains(value, ranges: referenceDroppedScalarRanges)
  }

  /// Whether `value` lies in one of the sorted inclusive ranges `[low0, high0, low1, high1, ...]`.
  private static func contains(_ value: UInt32, ranges: [UInt32]) -> Bool {
    var low = 0
    var high = ranges.count / 2
    while low < high {
      let middle = (low + high) / 2
      if ranges[2 * middle + 1] < value {
        low = middle + 1
      } else {
        high = middle
      }
    }
    return low < ranges.count / 2 && ranges[2 * low] <= value
  }

  /// Whether `scalar` has the Unicode `White_Space` property (tab, line feed and carriage
  /// return included).
  static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    let value = scalar.value
    if value < 0x80 { return value == 0x20 || (value >= 0x09 && value <= 0x0D) }
    return scalar.properties.isWhitespace
  }

  /// Whether `scalar` is an ideograph in one of the CJK blocks BERT splits character by character.
  ///
  /// The reference (`tokenizers`) starts the Extension E range at U+2B920 instead of U+2B820, so
  /// U+2B820...U+2B91F are ordinary letters here too.
  static func isCJKIdeograph(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
      0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
      return true
    default:
      return false
    }
  }

  /// Whether `scalar` is punctuation for BERT: any non-alphanumeric printable ASCII character,
  /// or a scalar the reference files under the Unicode punctuation categories (P*).
  static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
    let value = scalar.value
    if value < 0x80 {
      return (value >= 33 && value <= 47) || (value >= 58 && value <= 64)
        || (value >= 91 && value <= 96) || (value >= 123 && value <= 126)
    }
    return contains(value, ranges: referencePunctuationRanges)
  }
}
