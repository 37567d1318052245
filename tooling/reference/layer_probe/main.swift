// Writes the mean-pooled hidden states after encoder layers 6 (the last), 1 and 3 of every record
// of a corpus JSONL file, for `layer_probe.py`. Reads each record's first window only (as the
// shipped model's whole-prompt features do). Not part of the product: build it as described in
// tooling/reference/README.md ("layer_probe").
//
// usage: probe-layers CORPUS.jsonl OUTPUT_PREFIX ENCODER_DIR
// writes OUTPUT_PREFIX.f32 (rows of [L6 | L1 | L3], float32, 3 × hidden wide) and
// OUTPUT_PREFIX.jsonl (label, family, split, source per row, in input order).
import Embeddings
import Foundation
import LinearAlgebra

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
  FileHandle.standardError.write(Data("usage: probe-layers CORPUS.jsonl OUTPUT_PREFIX ENCODER_DIR\n".utf8))
  exit(64)
}
BLAS.threadCount = 2
let text = try TextEncoder(directory: URL(fileURLWithPath: arguments[3]))
let model = text.model
let bottomThree = try model.keepingBottomLayers(3)
let width = model.configuration.hiddenSize

var records: [(text: String, meta: String)] = []
for line in try String(contentsOfFile: arguments[1], encoding: .utf8).split(separator: "\n") {
  guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
    let prompt = object["text"] as? String
  else { continue }
  let meta = ["label", "family", "split", "source"].reduce(into: [String: Any]()) { $0[$1] = object[$1] ?? "" }
  records.append((prompt, String(decoding: try JSONSerialization.data(withJSONObject: meta), as: UTF8.self)))
}

/// The mean of a `[tokens, width]` matrix's rows.
func meanRow(_ rows: Matrix) -> [Float] {
  var sum = [Float](repeating: 0, count: width)
  for r in 0..<rows.rows { for j in 0..<width { sum[j] += rows.storage[r * width + j] } }
  return sum.map { $0 / Float(max(rows.rows, 1)) }
}

var vectors: [Float] = []
var metadata = ""
let started = Date()
var start = 0
while start < records.count {
  let end = min(start + 16, records.count)
  let batch = records[start..<end].map {
    text.windows(for: $0.text).first ?? [text.tokenizer.classifierID, text.tokenizer.separatorID]
  }
  let afterOne = try model.hiddenStates(batch: batch, layerCount: 1)
  let afterThree = try bottomThree.continueEncoding(afterOne, fromLayer: 1)
  let last = try model.continueEncoding(afterThree, fromLayer: 3)
  for k in batch.indices {
    vectors += meanRow(last[k]) + meanRow(afterOne[k]) + meanRow(afterThree[k])
    metadata += records[start + k].meta + "\n"
  }
  if start / 1024 != end / 1024 {
    FileHandle.standardError.write(
      Data("\(end) / \(records.count) in \(Int(Date().timeIntervalSince(started))) s\n".utf8))
  }
  start = end
}
try metadata.write(toFile: arguments[2] + ".jsonl", atomically: true, encoding: .utf8)
try vectors.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: arguments[2] + ".f32"))
