import Foundation
import LinearAlgebra
import Tokenization

/// The token embeddings of one prompt.
public struct TokenEmbeddings: Sendable {
  /// Token ids, `[tokens]`: `[CLS] pieces [SEP]` for every window, windows concatenated.
  public let ids: [Int]
  /// `last_hidden_state` rows, `[tokens, hidden]`, in the order of `ids`.
  public let hidden: Matrix
  /// How many encoder windows the prompt needed (1 unless it is longer than one window).
  public let windowCount: Int
  /// The mean of the prompt's rows after the encoder's bottom layers, `[hidden]`, when
  /// `TextEncoder.embed(windows:meanAfterLayers:)` was asked for it (same pass, no extra layers).
  public var lowerLayerMean: [Float]? = nil

  /// The number of token rows.
  public var tokenCount: Int { ids.count }
}

/// Text in, one embedding per token out: tokenizer, window rule and BERT encoder together.
///
/// **Window rule.** BERT sees at most `maxPositions` (512) positions. A prompt's word pieces are cut
/// into consecutive windows of at most `maxPositions − 2` (510) pieces; each window is encoded on
/// its own as `[CLS] window [SEP]`, and the rows of all windows are concatenated in order. No piece
/// is dropped, and a prompt of up to 510 pieces is exactly one ordinary BERT input. An empty prompt
/// is the single window `[CLS] [SEP]`.
public final class TextEncoder: Sendable {
  /// The WordPiece tokenizer of the encoder's vocabulary.
  public let tokenizer: WordPieceTokenizer
  /// The transformer.
  public let model: BertEncoder
  /// The most word pieces one window holds: `maxPositions − 2`.
  public let piecesPerWindow: Int

  /// The most tokens (over all windows) that one call to the model packs together; larger batches
  /// are split so the workspace stays bounded (about 60 MB for all-MiniLM-L6-v2).
  public static let tokensPerModelCall = 8192

  /// Loads the tokenizer (`vocab.txt`) and the model (`config.json`, `model.safetensors`).
  ///
  /// - Parameter directory: The encoder directory.
  /// - Throws: `EmbeddingsError` for missing or malformed files.
  public convenience init(directory: URL) throws(EmbeddingsError) {
    let vocabularyURL = directory.appendingPathComponent("vocab.txt")
    let tokenizer: WordPieceTokenizer
    do {
      tokenizer = try WordPieceTokenizer(vocabulary: Vocabulary(contentsOf: vocabularyURL))
    } catch {
      let code: EmbeddingsError.Code = error.code == .fileNotFound ? .fileNotFound : .invalidConfiguration
      throw EmbeddingsError(code, "cannot load the tokenizer: \(error.message)")
    }
    let model: BertEncoder
    do {
      model = try BertEncoder(directory: directory)
    } catch let error as EmbeddingsError {
      throw error
    } catch {
      throw EmbeddingsError(.unreadable, "cannot load the encoder in \(directory.path): \(error)")
    }
    try self.init(tokenizer: tokenizer, model: model)
  }

  /// Pairs a tokenizer with a model.
  ///
  /// - Throws: `EmbeddingsError(.invalidConfiguration)` when the vocabulary and the model disagree
  ///   in size or the model has fewer than 3 positions.
  public init(tokenizer: WordPieceTokenizer, model: BertEncoder) throws(EmbeddingsError) {
    guard tokenizer.vocabulary.count == model.configuration.vocabularySize else {
      throw EmbeddingsError(
        .invalidConfiguration,
        "the vocabulary has \(tokenizer.vocabulary.count) tokens but the model expects "
          + "\(model.configuration.vocabularySize)")
    }
    guard model.configuration.maxPositions >= 3 else {
      throw EmbeddingsError(.invalidConfiguration, "the model has fewer than 3 positions")
    }
    self.tokenizer = tokenizer
    self.model = model
    self.piecesPerWindow = model.configuration.maxPositions - 2
  }

  /// The encoder inputs for a prompt's word pieces: `[CLS] window [SEP]` per window.
  ///
  /// - Parameter pieces: Word-piece ids without special tokens.
  /// - Returns: One id sequence per window, each at most `maxPositions` long.
  public func windows(forPieces pieces: [Int]) -> [[Int]] {
    var windows: [[Int]] = []
    var start = 0
    repeat {
      let end = min(start + piecesPerWindow, pieces.count)
      windows.append([tokenizer.classifierID] + pieces[start..<end] + [tokenizer.separatorID])
      start = end
    } while start < pieces.count
    return windows
  }

  /// The encoder inputs for a prompt (see the window rule above).
  public func windows(for text: String) -> [[Int]] {
    windows(forPieces: tokenizer.pieceIDs(for: text))
  }

  /// The token string of an id, or `[id]` when the vocabulary has none.
  public func token(for id: Int) -> String {
    tokenizer.vocabulary.token(for: id) ?? "[\(id)]"
  }

  /// Embeds one prompt.
  ///
  /// - Returns: Rows `[tokens, hidden]` with the ids they belong to.
  /// - Throws: `EmbeddingsError` from the model (not expected for tokenizer output).
  public func embed(_ text: String) throws(EmbeddingsError) -> TokenEmbeddings {
    try embed([text])[0]
  }

  /// Embeds several prompts, packing their windows into few model calls for throughput.
  ///
  /// - Parameter texts: The prompts.
  /// - Returns: One `TokenEmbeddings` per prompt, in order.
  /// - Throws: `EmbeddingsError` from the model.
  public func embed(_ texts: [String]) throws(EmbeddingsError) -> [TokenEmbeddings] {
    try embed(windows: texts.map { windows(for: $0) })
  }

  /// Embeds prompts that are already cut into windows (see `windows(for:)`).
  ///
  /// - Parameters:
  ///   - prompts: Per prompt, its windows of token ids.
  ///   - meanAfterLayers: When given, each result also carries the mean of its rows after the
  ///     bottom `meanAfterLayers` layers (`lowerLayerMean`), taken on the way through the same
  ///     pass (`BertEncoder.hiddenStates` then `continueEncoding`: the same last rows).
  /// - Returns: One `TokenEmbeddings` per prompt, in order.
  /// - Throws: `EmbeddingsError(.invalidInput)` for an empty or over-long window, bad ids or a
  ///   layer count outside `0 ... layers`.
  public func embed(windows prompts: [[[Int]]], meanAfterLayers: Int? = nil) throws(EmbeddingsError)
    -> [TokenEmbeddings]
  {
    let flat = prompts.flatMap { $0 }
    var outputs: [Matrix] = []
    outputs.reserveCapacity(flat.count)
    var lowerSums: [[Float]] = []  // per window, `[hidden]`
    var start = 0
    while start < flat.count {
      var end = start
      var tokens = 0
      while end < flat.count, end == start || tokens + flat[end].count <= Self.tokensPerModelCall {
        tokens += flat[end].count
        end += 1
      }
      do {
        let part = Array(flat[start..<end])
        if let meanAfterLayers {
          let lower = try model.hiddenStates(batch: part, layerCount: meanAfterLayers)
          lowerSums += lower.map { $0.columnSums() }
          outputs += try model.continueEncoding(lower, fromLayer: meanAfterLayers)
        } else {
          outputs += try model.encode(batch: part)
        }
      } catch let error as EmbeddingsError {
        throw error
      } catch {
        throw EmbeddingsError(.invalidInput, "\(error)")
      }
      start = end
    }
    var results: [TokenEmbeddings] = []
    results.reserveCapacity(prompts.count)
    var next = 0
    let hiddenSize = model.configuration.hiddenSize
    for windows in prompts {
      let range = next..<(next + windows.count)
      next += windows.count
      var storage: [Float] = []
      storage.reserveCapacity(windows.reduce(0) { $0 + $1.count } * hiddenSize)
      for part in outputs[range] { storage += part.storage }
      let ids = windows.flatMap { $0 }
      var result = TokenEmbeddings(
        ids: ids, hidden: Matrix(rows: ids.count, columns: hiddenSize, storage: storage),
        windowCount: windows.count)
      if meanAfterLayers != nil, !ids.isEmpty {
        var mean = [Float](repeating: 0, count: hiddenSize)
        for sums in lowerSums[range] {
          for j in 0..<hiddenSize { mean[j] += sums[j] }
        }
        let scale = 1 / Float(ids.count)
        result.lowerLayerMean = mean.map { $0 * scale }
      }
      results.append(result)
    }
    return results
  }
}
