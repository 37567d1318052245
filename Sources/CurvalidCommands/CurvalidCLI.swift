import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The `curvalid` command line: dispatches to the subcommands and maps errors to exit codes.
public enum CurvalidCLI {
  /// The product version printed by `curvalid --version`.
  public static let version = "0.1.0"

  /// A subcommand: its name, one-line summary and entry point.
  struct Command: Sendable {
    let name: String
    let summary: String
    let run: @Sendable ([String]) throws(CommandError) -> Int32
  }

  static let commands: [Command] = [
    Command(name: "embed", summary: "print one embedding per token of a prompt", run: EmbedCommand.run),
    Command(
      name: "bench", summary: "measure speed (bench encoder, bench detector, bench service)",
      run: BenchCommand.run),
    Command(name: "train", summary: "train a detector and write a model bundle", run: TrainCommand.run),
    Command(
      name: "evaluate", summary: "metrics per family, leave-one-family-out, presets side by side",
      run: EvaluateCommand.run),
    Command(name: "score", summary: "score one prompt with a model bundle", run: ScoreCommand.run),
    Command(name: "serve", summary: "serve the detector over TCP and Unix sockets", run: ServeCommand.run),
    Command(
      name: "model",
      summary: "inspect a bundle, compare two on a corpus, or calibrate one on your benign prompts",
      run: ModelCommand.run),
    Command(name: "audit", summary: "verify, tail, export and label the audit log", run: AuditCommand.run),
    Command(
      name: "cache", summary: "list the embedding caches and prune the ones no longer needed",
      run: CacheCommand.run),
  ]

  static var usage: String {
    let width = commands.map(\.name.count).max() ?? 0
    let lines = commands.map {
      "  " + $0.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + $0.summary
    }
    return """
      usage: curvalid COMMAND [OPTIONS]

      curvalid decides whether a prompt sent to a language model is an adversarial attack.

      commands:
      \(lines.joined(separator: "\n"))

      Run `curvalid COMMAND --help` for a command's options. `curvalid --version` prints the version.
      Exit status: 0 success, 1 failure, 64 usage error.

      """
  }

  /// Runs the command line and returns the process exit status.
  ///
  /// - Parameter arguments: The arguments after the program name.
  /// - Returns: 0 on success, 64 for a usage error, 1 (or a command's own status) otherwise.
  public static func run(_ arguments: [String]) -> Int32 {
    signal(SIGPIPE, SIG_IGN)
    do throws(CommandError) {
      guard let first = arguments.first else {
        printError("curvalid: missing command (see curvalid --help)")
        return 64
      }
      switch first {
      case "--help", "-h", "help":
        FileHandle.standardOutput.write(Data(usage.utf8))
        return 0
      case "--version", "version":
        print("curvalid \(version)")
        return 0
      default:
        guard let command = commands.first(where: { $0.name == first }) else {
          throw CommandError.usage("unknown command '\(first)' (see curvalid --help)")
        }
        return try command.run(Array(arguments.dropFirst()))
      }
    } catch {
      printError("curvalid: \(error.message)")
      return error.exitCode
    }
  }
}
