import Embeddings
import Foundation

extension EmbeddingProvider {
  /// The encoder inputs of a prompt's chunks (`DetectorConfiguration.Chunking`): one
  /// `[CLS] chunk [SEP]` id sequence per chunk, in order; empty when the prompt has at most
  /// `chunking.length` word pieces. Chunks never exceed the encoder's window.
  ///
  /// A prompt that a language model reads differently from this tokenizer (full-width or other
  /// compatibility characters, look-alike Cyrillic or Greek letters in Latin words, a word too
  /// long for WordPiece, which reads it as one `[UNK]`) is also read as a reader would
  /// (`WordPieceTokenizer.alternateReading`): that text, whole when it fits one chunk, else in
  /// chunks, follows with start `−1 − s` for a chunk starting at its piece `s` (so its cache keys
  /// differ from the prompt's own chunks).
  ///
  /// - Returns: The chunks' start (in word pieces) and ids.
  func chunkInputs(_ text: String, chunking: DetectorConfiguration.Chunking) -> [(start: Int, ids: [Int])] {
    chunkInputs(text, reading: encoder.tokenizer.alternateReading(text), chunking: chunking)
  }

  /// `chunkInputs(_:chunking:)` with the text's reading already found (`nil`: none).
  func chunkInputs(_ text: String, reading: String?, chunking: DetectorConfiguration.Chunking) -> [(
    start: Int, ids: [Int]
  )] {
    var settings = chunking
    settings.length = min(chunking.length, encoder.piecesPerWindow)
    settings.stride = min(chunking.stride, settings.length)
    let tokenizer = encoder.tokenizer
    func cut(_ pieces: [Int], starts: [Int]) -> [(start: Int, ids: [Int])] {
      starts.map { start in
        let end = min(start + settings.length, pieces.count)
        return (start, [tokenizer.classifierID] + pieces[start..<end] + [tokenizer.separatorID])
      }
    }
    let pieces = tokenizer.pieceIDs(for: text)
    var inputs = cut(pieces, starts: settings.starts(pieces: pieces.count))
    if let reading {
      let respacedPieces = tokenizer.pieceIDs(for: reading)
      let starts =
        respacedPieces.count > settings.length ? settings.starts(pieces: respacedPieces.count) : [0]
      inputs += cut(respacedPieces, starts: starts).map { (-1 - $0.start, $0.ids) }
    }
    return inputs
  }

  /// The encoder input of a prompt's opening (`Chunking.attackOpeningsInTraining`): its first
  /// `length` word pieces as `[CLS] opening [SEP]` (start 0), or none when the prompt has at most
  /// `length` pieces (it is then its own opening). `length` is capped at the encoder's window.
  /// It is the first chunk that chunks of `length` pieces would cut, without a reading.
  package func openingInputs(_ text: String, length: Int) -> [(start: Int, ids: [Int])] {
    var opening = DetectorConfiguration.Chunking()
    opening.length = length
    opening.stride = length
    return Array(chunkInputs(text, reading: nil, chunking: opening).prefix(1))
  }

  /// The encoder inputs of a prompt's segments (`DetectorConfiguration.Chunking.segments`,
  /// `PromptSegments`): one `[CLS] segment [SEP]` id sequence per segment, in order, each cut to
  /// `chunking.length` word pieces; none when the prompt has fewer than two segments or the
  /// settings do not ask for them.
  ///
  /// A prompt with a reading (`WordPieceTokenizer.alternateReading`, as in `chunkInputs`) also
  /// has the reading's segments, by the same rule, after its own, with start `−1 − i` for the
  /// reading's segment `i` (so their cache keys differ): a decoded line is then decided as a line
  /// of plain text would be, not only inside the reading's chunk.
  ///
  /// - Returns: The segments' index among all the prompt's (or its reading's) segments (their
  ///   `start`) and ids.
  package func segmentInputs(_ text: String, chunking: DetectorConfiguration.Chunking) -> [(
    start: Int, ids: [Int]
  )] {
    guard chunking.segments else { return [] }
    return segmentInputs(text, reading: encoder.tokenizer.alternateReading(text), chunking: chunking)
  }

  /// `segmentInputs(_:chunking:)` with the text's reading already found (`nil`: none).
  func segmentInputs(_ text: String, reading: String?, chunking: DetectorConfiguration.Chunking) -> [(
    start: Int, ids: [Int]
  )] {
    guard chunking.segments else { return [] }
    let length = min(chunking.length, encoder.piecesPerWindow)
    let tokenizer = encoder.tokenizer
    func segments(of text: String) -> [(start: Int, ids: [Int])] {
      var inputs: [(start: Int, ids: [Int])] = []
      for (index, segment) in PromptSegments.indexedSegments(of: text, limit: chunking.maxSegments) {
        let pieces = tokenizer.pieceIDs(for: segment).prefix(length)
        guard !pieces.isEmpty else { continue }
        inputs.append((index, [tokenizer.classifierID] + pieces + [tokenizer.separatorID]))
      }
      return inputs.count >= 2 ? inputs : []
    }
    var inputs = segments(of: text)
    if let reading {
      inputs += segments(of: reading).map { (-1 - $0.start, $0.ids) }
    }
    return inputs
  }

  /// The cache key of one segment, as `chunkKey` with its own prefix.
  package static func segmentKey(_ text: String, start: Int, length: Int) -> String {
    "\u{1}curvalid-segment \(start)+\(length)\u{1}" + text
  }

  /// The cache key of one chunk: the prompt with a prefix naming the chunk, a string no prompt
  /// of the corpus starts with (its digest names the cache entry).
  package static func chunkKey(_ text: String, start: Int, length: Int) -> String {
    "\u{1}curvalid-chunk \(start)+\(length)\u{1}" + text
  }

  /// Embeds every chunk of every text, using and filling the cache (chunk entries are keyed by
  /// the prompt and the chunk's place in it).
  ///
  /// - Parameters:
  ///   - texts: The prompts.
  ///   - chunking: The chunk rule.
  /// - Returns: Per text, its chunks' embeddings in order (`[]` for a short text); each is
  ///   `[length + 2, hidden]` with `totalTokens` the chunk's own rows.
  /// - Throws: `DetectionError` from the encoder or the cache.
  public func embedChunks(_ texts: [String], chunking: DetectorConfiguration.Chunking) throws(DetectionError)
    -> [[PromptEmbedding]]
  {
    try embedChunks(texts, inputs: texts.map { chunkInputs($0, chunking: chunking) })
  }

  /// `embedChunks(_:chunking:)` for chunks already cut (`chunkInputs(_:chunking:)`, one list per text).
  /// `cacheKey` names a part's cache entry (`chunkKey`, or `segmentKey` for segments).
  package func embedChunks(
    _ texts: [String], inputs chunkLists: [[(start: Int, ids: [Int])]],
    cacheKey: (String, Int, Int) -> String = Self.chunkKey
  ) throws(DetectionError) -> [[PromptEmbedding]] {
    var results: [[PromptEmbedding?]] = []
    var missing: [(text: Int, chunk: Int, key: String, ids: [Int])] = []
    for (index, (text, inputs)) in zip(texts, chunkLists).enumerated() {
      var row = [PromptEmbedding?](repeating: nil, count: inputs.count)
      for (slot, input) in inputs.enumerated() {
        let key = cacheKey(text, input.start, input.ids.count - 2)
        // A hit must hold this part's ids: an entry under a reused key (an older cutting rule)
        // is a miss and is overwritten.
        if var hit = cache?.load(text: key, maxWindows: 1), hit.ids == input.ids {
          hit.lexicon = encoder.model
          row[slot] = hit
        } else {
          missing.append((index, slot, key, input.ids))
        }
      }
      results.append(row)
    }
    var start = 0
    while start < missing.count {
      // Bounded batches: the encoder packs them into few model calls; memory stays small.
      let end = min(start + 64, missing.count)
      let batch = missing[start..<end]
      let embedded: [TokenEmbeddings]
      do {
        embedded = try encoder.embed(
          windows: batch.map { [$0.ids] }, meanAfterLayers: lowerLayerCapture)
      } catch {
        throw DetectionError(.internalError, "the encoder failed: \(error.message)")
      }
      for (entry, output) in zip(batch, embedded) {
        let embedding = PromptEmbedding(
          ids: output.ids, hidden: output.hidden, totalTokens: output.ids.count, lexicon: encoder.model,
          lowerLayerMean: output.lowerLayerMean)
        try cache?.store(embedding, text: entry.key, maxWindows: 1)
        // With a cache, the stored (half-precision) rows: a cold cache then scores exactly as a
        // warm one, so a bundle's chunk and segment thresholds do not depend on which run
        // embedded them first.
        if var stored = cache?.load(text: entry.key, maxWindows: 1) {
          stored.lexicon = encoder.model
          results[entry.text][entry.chunk] = stored
        } else {
          results[entry.text][entry.chunk] = embedding
        }
      }
      start = end
    }
    return results.map { $0.compactMap { $0 } }
  }
}
