import Foundation

/// Runs the built `curvalid` executable, as a user would, and captures what it printed.
public enum BinaryRunner {
  /// The result of one run.
  public struct Result: Sendable {
    /// The exit status.
    public let status: Int32
    /// Standard output as bytes.
    public let standardOutput: Data
    /// Standard error as text.
    public let standardError: String

    /// Standard output decoded as UTF-8 (empty when it is not valid UTF-8).
    public var output: String { String(bytes: standardOutput, encoding: .utf8) ?? "" }
  }

  /// The `curvalid` binary next to the test bundle (same build configuration).
  public static var executable: URL {
    let candidates = [
      Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("curvalid"),
      Bundle.main.bundleURL.appendingPathComponent("curvalid"),
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
        "curvalid"),
      Fixtures.repositoryRoot.appendingPathComponent(".build/debug/curvalid"),
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[3]
  }

  /// Runs `curvalid` with `arguments`, feeding `input` on standard input.
  ///
  /// - Parameters:
  ///   - arguments: The command line after the program name.
  ///   - input: Bytes for standard input (empty: standard input is closed at once).
  ///   - environment: Extra environment variables.
  /// - Returns: Exit status and both outputs.
  public static func run(
    _ arguments: [String], input: Data = Data(), environment: [String: String] = [:]
  ) throws -> Result {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let writer = Thread {
      stdin.fileHandleForWriting.write(input)
      try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let errorData = Locked(Data())
    let errorReader = Thread {
      errorData.set(stderr.fileHandleForReading.readDataToEndOfFile())
    }
    errorReader.start()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while errorReader.isExecuting || !errorReader.isFinished { usleep(1000) }
    return Result(
      status: process.terminationStatus, standardOutput: output,
      standardError: String(decoding: errorData.get(), as: UTF8.self))
  }
}

/// A value guarded by a lock, for handing results between threads in tests.
final class Locked<Value>: @unchecked Sendable {
  private var value: Value
  private let lock = NSLock()

  init(_ value: Value) { self.value = value }

  func set(_ newValue: Value) {
    lock.lock()
    value = newValue
    lock.unlock()
  }

  func get() -> Value {
    lock.lock()
    defer { lock.unlock() }
    return value
  }
}
