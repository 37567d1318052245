import DecisionLog
import Detection
import Foundation
import Hashing

/// Labelled audit prompts as extra training records for `curvalid train --audit DB`.
enum AuditTrainingData {
  /// The family and source tag audit-labelled records carry in the corpus and the bundle's counts.
  static let family = "audit_labelled"

  /// Reads the labels of an audit database (the latest label per row wins) as training records,
  /// each repeated `weight` times so a handful of operator corrections can outweigh thousands of
  /// corpus records.
  ///
  /// - Returns: The records and a digest of what was read (row ids, labels, texts).
  /// - Throws: `CommandError.failure` when the database cannot be read.
  static func records(fromAudit path: String, weight: Int) throws(CommandError) -> (
    records: [CorpusRecord], digest: String, labelled: Int
  ) {
    let labels: [LabeledPrompt]
    do {
      labels = try AuditLog.labels(path: path)
    } catch {
      throw .failure("cannot read labels from \(path): \(error.message)")
    }
    var latest: [Int64: LabeledPrompt] = [:]
    for label in labels {
      if let existing = latest[label.id], existing.timeMilliseconds > label.timeMilliseconds { continue }
      latest[label.id] = label
    }
    var hasher = SHA256()
    var records: [CorpusRecord] = []
    for id in latest.keys.sorted() {
      guard let label = latest[id] else { continue }
      let kind: CorpusRecord.Label = label.label == "adversarial" ? .adversarial : .benign
      hasher.update(Array("\(id)\u{1F}\(label.label)\u{1F}\(label.text)\u{1E}".utf8))
      let record = CorpusRecord(
        text: label.text, label: kind, family: family,
        source: "audit:\(URL(fileURLWithPath: path).lastPathComponent)",
        group: "audit:\(id)", split: .train)
      records += Array(repeating: record, count: weight)
    }
    return (records, SHA256.hex(hasher.finalize()), latest.count)
  }

  /// `corpus` plus the audit records, with a digest covering both.
  static func merge(_ corpus: Corpus, with extra: [CorpusRecord], auditDigest: String, path: String) -> Corpus
  {
    Corpus(
      records: corpus.records + extra, digest: SHA256.hexDigest(of: corpus.digest + "+audit:" + auditDigest),
      paths: corpus.paths + [path])
  }
}
