import Foundation
import Hashing

/// One labelled prompt of a training corpus (a line of the corpus builder's JSONL output).
public struct CorpusRecord: Sendable, Equatable, Codable {
  /// The three labels of the corpus.
  public enum Label: String, Sendable, Equatable, Codable, CaseIterable {
    /// An ordinary prompt.
    case benign
    /// An attack technique: jailbreak template, adversarial suffix, injection.
    case adversarial
    /// A plainly harmful request with no attack technique (kept apart by default).
    case harmful
  }

  /// The three splits of the corpus.
  public enum Split: String, Sendable, Equatable, Codable, CaseIterable {
    /// Fits every trained part.
    case train
    /// Early stopping and threshold calibration.
    case validation
    /// Reported only.
    case test
  }

  /// The prompt text.
  public var text: String
  /// Its label.
  public var label: Label
  /// The family (`real_user_chat`, `template`, …).
  public var family: String
  /// The source package or dataset.
  public var source: String
  /// Records of one group (fillings of one template) always share a split.
  public var group: String
  /// The split.
  public var split: Split

  /// Creates a record.
  public init(
    text: String, label: Label, family: String, source: String, group: String = "", split: Split
  ) {
    self.text = text
    self.label = label
    self.family = family
    self.source = source
    self.group = group
    self.split = split
  }

  enum CodingKeys: String, CodingKey {
    case text, label, family, source, group, split
  }

  /// Decodes a record. Only `text` and `label` are required, so that an operator's own labelled
  /// prompts can be scored as they are: `family` defaults to the label (`adversarial`, `benign`),
  /// `source` to the family, `group` to empty and `split` to `test`.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    text = try container.decode(String.self, forKey: .text)
    label = try container.decode(Label.self, forKey: .label)
    family = try container.decodeIfPresent(String.self, forKey: .family) ?? label.rawValue
    source = try container.decodeIfPresent(String.self, forKey: .source) ?? family
    group = try container.decodeIfPresent(String.self, forKey: .group) ?? ""
    split = try container.decodeIfPresent(Split.self, forKey: .split) ?? .test
  }
}

/// A training corpus: records from one or more JSONL files, with the files' digest.
public struct Corpus: Sendable {
  /// All records, in file order.
  public var records: [CorpusRecord]
  /// SHA-256 of the corpus files' bytes, concatenated in the order given (lower-case hex).
  public var digest: String
  /// The files read, as given.
  public var paths: [String]

  /// Wraps records already in memory (tests, audit labels).
  public init(records: [CorpusRecord], digest: String = "", paths: [String] = []) {
    self.records = records
    self.digest = digest.isEmpty ? Corpus.digest(of: records) : digest
    self.paths = paths
  }

  /// Reads JSONL corpus files (one JSON object per line; blank lines are skipped).
  ///
  /// - Parameter urls: The files, in order.
  /// - Returns: The records of all files.
  /// - Throws: `DetectionError(.io)` for an unreadable file, `.invalidInput` naming the file and
  ///   line for a malformed record, and for a corpus without records.
  public init(contentsOf urls: [URL]) throws(DetectionError) {
    var records: [CorpusRecord] = []
    var hasher = SHA256()
    let decoder = JSONDecoder()
    for url in urls {
      let data: Data
      do {
        data = try Data(contentsOf: url)
      } catch {
        throw DetectionError(.io, "cannot read corpus \(url.path): \(error.localizedDescription)")
      }
      data.withUnsafeBytes { hasher.update($0) }
      var lineNumber = 0
      var start = data.startIndex
      while start < data.endIndex {
        let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
        lineNumber += 1
        let line = data[start..<end]
        start = end < data.endIndex ? data.index(after: end) : end
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
        do {
          records.append(try decoder.decode(CorpusRecord.self, from: line))
        } catch {
          throw DetectionError(
            .invalidInput, "\(url.path):\(lineNumber): not a corpus record (\(Corpus.reason(error)))")
        }
      }
    }
    guard !records.isEmpty else {
      throw DetectionError(.invalidInput, "the corpus \(urls.map(\.path)) holds no records")
    }
    self.records = records
    self.digest = SHA256.hex(hasher.finalize())
    self.paths = urls.map(\.path)
  }

  /// A short reason for a decoding failure.
  private static func reason(_ error: any Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
    case DecodingError.dataCorrupted(let context):
      let path = context.codingPath.map(\.stringValue).joined(separator: ".")
      let allowed =
        switch path {
        case "label": " (benign, adversarial or harmful)"
        case "split": " (train, validation or test)"
        default: ""
        }
      return path.isEmpty ? "invalid JSON" : "invalid value for '\(path)'\(allowed)"
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
      return "wrong type for '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
    default: return "\(error)"
    }
  }

  /// A digest of in-memory records (text, label, family, split), for corpora not read from files.
  static func digest(of records: [CorpusRecord]) -> String {
    var bytes: [UInt8] = []
    for record in records {
      bytes += Array(
        "\(record.label.rawValue)\t\(record.family)\t\(record.split.rawValue)\t\(record.text)\n".utf8)
    }
    return SHA256.hex(SHA256.hash(bytes))
  }

  /// Indices of the records that match every given condition.
  ///
  /// - Parameters:
  ///   - splits: Allowed splits (`nil`: any).
  ///   - labels: Allowed labels (`nil`: any).
  ///   - excludingFamilies: Families to leave out.
  ///   - families: Allowed families (`nil`: any).
  /// - Returns: Record indices in corpus order.
  public func select(
    splits: Set<CorpusRecord.Split>? = nil, labels: Set<CorpusRecord.Label>? = nil,
    families: Set<String>? = nil, excludingFamilies: Set<String> = []
  ) -> [Int] {
    records.indices.filter { index in
      let record = records[index]
      return (splits?.contains(record.split) ?? true) && (labels?.contains(record.label) ?? true)
        && (families?.contains(record.family) ?? true) && !excludingFamilies.contains(record.family)
    }
  }

  /// Counts per `label/family` key (e.g. `benign/real_user_chat`) over the given records.
  public func counts(_ indices: [Int]) -> [String: Int] {
    var counts: [String: Int] = [:]
    for index in indices {
      counts["\(records[index].label.rawValue)/\(records[index].family)", default: 0] += 1
    }
    return counts
  }

  /// The attack families (`adversarial` label), sorted.
  public var attackFamilies: [String] {
    Set(records.filter { $0.label == .adversarial }.map(\.family)).sorted()
  }
}
