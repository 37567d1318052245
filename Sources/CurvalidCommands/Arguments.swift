import Foundation

/// A command line split into options, flags and positional arguments, checked against what the
/// command accepts.
///
/// Accepted forms: `--name value`, `--name=value`, boolean `--flag`, `-h` for `--help`, and `--`
/// to end options (everything after it is positional, even if it starts with `-`). A lone `-` is
/// positional. Anything else starting with `-` is a usage error.
struct Arguments {
  /// Positional arguments in order.
  private(set) var positional: [String] = []
  private var values: [String: String] = [:]
  private var flags: Set<String> = []

  /// Parses `arguments` (without the program and command names).
  ///
  /// - Parameters:
  ///   - arguments: The raw arguments.
  ///   - options: Names (without `--`) that take a value.
  ///   - flags: Names (without `--`) that take none; `help` is always accepted.
  /// - Throws: `CommandError.usage` for unknown options, missing values or repeated options.
  init(_ arguments: [String], options: Set<String>, flags: Set<String>) throws(CommandError) {
    var index = 0
    var optionsEnded = false
    while index < arguments.count {
      let argument = arguments[index]
      index += 1
      if optionsEnded || argument == "-" || !argument.hasPrefix("-") {
        positional.append(argument)
        continue
      }
      if argument == "--" {
        optionsEnded = true
        continue
      }
      if argument == "-h" {
        self.flags.insert("help")
        continue
      }
      guard argument.hasPrefix("--") else {
        throw .usage("unknown option '\(argument)' (see --help)")
      }
      let body = argument.dropFirst(2)
      let name: String
      var inlineValue: String?
      if let equals = body.firstIndex(of: "=") {
        name = String(body[..<equals])
        inlineValue = String(body[body.index(after: equals)...])
      } else {
        name = String(body)
      }
      if name == "help" || flags.contains(name) {
        guard inlineValue == nil else { throw .usage("option --\(name) takes no value") }
        self.flags.insert(name)
      } else if options.contains(name) {
        guard values[name] == nil else { throw .usage("option --\(name) is given more than once") }
        if let inlineValue {
          values[name] = inlineValue
        } else {
          guard index < arguments.count else { throw .usage("option --\(name) needs a value") }
          values[name] = arguments[index]
          index += 1
        }
      } else {
        throw .usage("unknown option '--\(name)' (see --help)")
      }
    }
  }

  /// Whether `--name` was given.
  func flag(_ name: String) -> Bool { flags.contains(name) }

  /// The names (without `--`) of every option and flag given, `help` excepted.
  var givenNames: Set<String> { Set(values.keys).union(flags).subtracting(["help"]) }

  /// The value of `--name`, if given.
  func value(_ name: String) -> String? { values[name] }

  /// The value of `--name` as an integer within `range`, or `defaultValue` when absent.
  ///
  /// - Throws: `CommandError.usage` when the value is not an integer in `range`.
  func integer(_ name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws(CommandError)
    -> Int
  {
    guard let text = values[name] else { return defaultValue }
    guard let number = Int(text), range.contains(number) else {
      throw .usage(
        "--\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
    }
    return number
  }

  /// The value of `--name` as a comma-separated list of integers within `range`.
  ///
  /// - Throws: `CommandError.usage` when an entry is not an integer in `range`.
  func integers(_ name: String, default defaultValue: [Int], in range: ClosedRange<Int>) throws(CommandError)
    -> [Int]
  {
    guard let text = values[name] else { return defaultValue }
    var result: [Int] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      guard let number = Int(part.trimmingCharacters(in: .whitespaces)), range.contains(number) else {
        throw .usage(
          "--\(name) takes integers from \(range.lowerBound) to \(range.upperBound) separated by commas, "
            + "got '\(text)'")
      }
      result.append(number)
    }
    return result
  }
}
