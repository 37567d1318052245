import Embeddings
import Foundation

/// `curvalid embed`: one JSON line per token with its embedding.
enum EmbedCommand {
  static let help = """
    usage: curvalid embed [TEXT] [OPTIONS]

    Prints one JSON line per token of TEXT:
      {"index":0,"token":"[CLS]","id":101,"embedding":[...]}
    Without TEXT, reads one prompt per line from standard input and prints a blank line between
    prompts. Prompts longer than one encoder window are cut into windows of 510 word pieces, each
    with [CLS] and [SEP]; the rows of all windows follow each other (index keeps counting).

    options:
    \(EncoderOptions.help)
      -h, --help      show this help

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(raw, options: EncoderOptions.names, flags: [])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    guard arguments.positional.count <= 1 else {
      throw .usage(
        "embed takes at most one TEXT argument (quote the prompt), got \(arguments.positional.count)")
    }
    try EncoderOptions.applyThreads(arguments)
    let encoder = try EncoderOptions.load(arguments)
    let output = OutputWriter()
    if let text = arguments.positional.first {
      try write(try embed([text], with: encoder)[0], encoder: encoder, to: output)
      try output.flush()
      return 0
    }
    return try embedStandardInput(with: encoder, to: output)
  }

  /// Reads prompts line by line, embeds them in small batches, and reports bad lines on stderr.
  private static func embedStandardInput(with encoder: TextEncoder, to output: OutputWriter)
    throws(CommandError)
    -> Int32
  {
    var failures = 0
    var first = true
    var pending: [String] = []
    func drain() throws(CommandError) {
      for embedded in try embed(pending, with: encoder) {
        if !first { try output.write("\n") }
        first = false
        try write(embedded, encoder: encoder, to: output)
      }
      pending.removeAll(keepingCapacity: true)
      try output.flush()
    }
    let reader = LineReader(descriptor: 0)
    var lineNumber = 0
    while true {
      guard var line = try reader.nextLine() else { break }
      lineNumber += 1
      if line.last == UInt8(ascii: "\r") { line.removeLast() }
      guard let text = String(validating: line, as: UTF8.self) else {
        printError("curvalid: line \(lineNumber): not valid UTF-8, skipped")
        failures += 1
        continue
      }
      pending.append(text)
      if pending.count == 16 { try drain() }
    }
    try drain()
    return failures == 0 ? 0 : 1
  }

  private static func embed(_ texts: [String], with encoder: TextEncoder) throws(CommandError)
    -> [TokenEmbeddings]
  {
    do {
      return try encoder.embed(texts)
    } catch {
      throw .failure(error.message)
    }
  }

  private static func write(_ embedded: TokenEmbeddings, encoder: TextEncoder, to output: OutputWriter)
    throws(CommandError)
  {
    let hidden = embedded.hidden
    for (index, id) in embedded.ids.enumerated() {
      var line = "{\"index\":\(index),\"token\":\(JSONText.string(encoder.token(for: id))),\"id\":\(id),"
      line += "\"embedding\":["
      line += hidden.row(index).map(JSONText.number).joined(separator: ",")
      line += "]}\n"
      try output.write(line)
    }
  }
}
