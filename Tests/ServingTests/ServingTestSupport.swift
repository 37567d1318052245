import Detection
import Foundation
import Serving
import XCTest

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A test case that starts servers on 127.0.0.1 port 0 and stops them after each test.
class ServerTestCase: XCTestCase {
  var servers: [Server] = []

  override func tearDown() {
    for server in servers { try? server.stop() }
    servers.removeAll()
    super.tearDown()
  }

  /// Starts a server; it is stopped after the test.
  ///
  /// - Returns: The server and its TCP port.
  func start(
    _ configuration: ServerConfiguration, scorer: any PromptScoring = FakeScorer(),
    recorder: (any DecisionRecorder)? = nil, loader: (@Sendable () throws -> any PromptScoring)? = nil
  ) throws -> (Server, Int) {
    let server = try Server(configuration: configuration, scorer: scorer, recorder: recorder, loader: loader)
    try server.start()
    servers.append(server)
    return (server, server.tcpPorts.first ?? 0)
  }
}

/// A deterministic scorer: score = fraction of words that are "ignore"; a prompt containing
/// `FAIL` fails with an internal error. Optionally blocks on a gate to hold requests in flight.
final class FakeScorer: PromptScoring {
  let modelID: String
  let gate: Gate?
  let calls = Counter()

  init(modelID: String = "fake0001", gate: Gate? = nil) {
    self.modelID = modelID
    self.gate = gate
  }

  func score(_ prompts: [String], explain: Bool) -> [Result<Decision, DetectionError>] {
    calls.increment()
    gate?.pass()
    return prompts.map { prompt in
      if prompt.contains("FAIL") { return .failure(DetectionError(.internalError, "asked to fail")) }
      let words = prompt.split(whereSeparator: \.isWhitespace)
      let hits = words.filter { $0.lowercased() == "ignore" }.count
      let score = words.isEmpty ? 0 : Float(hits) / Float(words.count)
      let explanation =
        explain
        ? Decision.Explanation(
          topTokens: [(token: "ignore", position: 1, value: 0.5)], nearestBenignDistances: [1, 2],
          reading: prompt.hasPrefix("disguised:") ? String(prompt.dropFirst(10)) : nil)
        : nil
      return .success(
        Decision(
          score: score, threshold: 0.5, tokens: words.count + 2,
          features: [.init(name: "prompt_lid", value: score), .init(name: "curvature_conv1", value: 0.25)],
          explanation: explanation))
    }
  }
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
  private var value = 0
  private let lock = NSLock()
  func increment() {
    lock.lock()
    value += 1
    lock.unlock()
  }
  var count: Int {
    lock.lock()
    defer { lock.unlock() }
    return value
  }
}

/// Holds scoring calls until opened; tells the test when a call has arrived.
final class Gate: @unchecked Sendable {
  private let condition = NSCondition()
  private var isOpen = false
  private var arrivals = 0

  /// Called by the scorer: counts the arrival and waits until the gate opens.
  func pass() {
    condition.lock()
    arrivals += 1
    condition.broadcast()
    while !isOpen { condition.wait() }
    condition.unlock()
  }

  /// Waits (at most 10 s) until `count` calls have arrived.
  func waitForArrivals(_ count: Int) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    let deadline = Date(timeIntervalSinceNow: 10)
    while arrivals < count {
      if !condition.wait(until: deadline) { return false }
    }
    return true
  }

  /// Lets every call through, now and later.
  func open() {
    condition.lock()
    isOpen = true
    condition.broadcast()
    condition.unlock()
  }
}

/// Records entries in memory and numbers them from 1.
final class MemoryRecorder: DecisionRecorder, @unchecked Sendable {
  private let lock = NSLock()
  private var stored: [AuditEntry] = []
  private var flushes = 0

  func record(_ entry: AuditEntry) async throws -> Int64? { append(entry) }

  private func append(_ entry: AuditEntry) -> Int64 {
    lock.lock()
    defer { lock.unlock() }
    stored.append(entry)
    return Int64(stored.count)
  }

  func flush() throws {
    lock.lock()
    flushes += 1
    lock.unlock()
  }

  var entries: [AuditEntry] {
    lock.lock()
    defer { lock.unlock() }
    return stored
  }

  var flushCount: Int {
    lock.lock()
    defer { lock.unlock() }
    return flushes
  }
}

/// A recorder whose disk is always full.
struct FailingRecorder: DecisionRecorder {
  struct DiskFull: Error {}
  func record(_ entry: AuditEntry) async throws -> Int64? { throw DiskFull() }
  func flush() throws {}
}

/// A blocking client socket with a receive timeout, for talking to the server in tests.
///
/// `@unchecked Sendable` so one thread may send while another reads (the two share no state).
final class TestClient: @unchecked Sendable {
  private let descriptor: Int32
  private var buffer: [UInt8] = []

  /// Connects to 127.0.0.1:`port`.
  init(port: Int) throws {
    descriptor = socket(AF_INET, TestClient.streamType, 0)
    guard descriptor >= 0 else { throw POSIXError(.EIO) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let status = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard status == 0 else {
      let code = errno
      close(descriptor)
      throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
    }
    try setTimeout()
  }

  /// Connects to the Unix socket at `path`.
  init(unixPath path: String) throws {
    descriptor = socket(AF_UNIX, TestClient.streamType, 0)
    guard descriptor >= 0 else { throw POSIXError(.EIO) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    let status = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard status == 0 else {
      let code = errno
      close(descriptor)
      throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
    }
    try setTimeout()
  }

  #if os(Linux)
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let sendFlags = Int32(MSG_NOSIGNAL)
  #else
    static let streamType = SOCK_STREAM
    static let sendFlags: Int32 = 0
  #endif

  private func setTimeout() throws {
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    guard
      setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
    else { throw POSIXError(.EIO) }
  }

  deinit { close(descriptor) }

  /// Sends raw bytes.
  func send(bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let count = bytes.withUnsafeBytes { raw -> Int in
        guard let base = raw.baseAddress else { return 0 }
        return sendBytes(descriptor, base + offset, raw.count - offset)
      }
      if count < 0 {
        if errno == EINTR { continue }
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
      }
      offset += count
    }
  }

  private func sendBytes(_ socket: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
      Glibc.send(socket, bytes, count, TestClient.sendFlags)
    #else
      Darwin.send(socket, bytes, count, TestClient.sendFlags)
    #endif
  }

  /// Sends text as UTF-8.
  func send(_ text: String) throws { try send(bytes: Array(text.utf8)) }

  /// Closes the sending direction (like `nc` at the end of its input).
  func shutdownWrite() { shutdown(descriptor, Int32(SHUT_WR)) }

  /// The next line, or `nil` at end of stream; throws on a 10 s timeout.
  func readLine() throws -> String? {
    while true {
      if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
        let line = String(decoding: buffer[..<newline], as: UTF8.self)
        buffer.removeSubrange(...newline)
        return line
      }
      var chunk = [UInt8](repeating: 0, count: 65536)
      let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
      if count == 0 { return nil }
      if count < 0 {
        if errno == EINTR { continue }
        if errno == ECONNRESET { return nil }
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
      }
      buffer.append(contentsOf: chunk[..<count])
    }
  }

  /// The next line as a JSON object.
  func readReply(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let text = try XCTUnwrap(try readLine(), "connection closed", file: file, line: line)
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try XCTUnwrap(object as? [String: Any], "not an object: \(text)", file: file, line: line)
  }

  /// Sends one line and reads one reply.
  func request(_ line: String, file: StaticString = #filePath, line number: UInt = #line) throws -> [String:
    Any]
  {
    try send(line + "\n")
    return try readReply(file: file, line: number)
  }

  /// Whether the server closed the connection (reads until end of stream, skipping lines).
  func readsEndOfStream() throws -> Bool {
    while let _ = try readLine() {}
    return true
  }
}

extension [String: Any] {
  /// The error code of an error reply.
  var errorCode: String? { (self["error"] as? [String: Any])?["code"] as? String }
}

/// A test configuration: loopback port 0, short limits.
func testConfiguration(_ adjust: (inout ServerConfiguration) -> Void = { _ in }) -> ServerConfiguration {
  var configuration = ServerConfiguration()
  configuration.tcpAddresses = [ListenAddress(host: "127.0.0.1", port: 0)]
  configuration.batchWaitMilliseconds = 1
  configuration.drainTimeout = 10
  configuration.serviceVersion = "9.9.9"
  adjust(&configuration)
  return configuration
}

/// A fresh temporary directory (removed by the caller's teardown).
func temporaryDirectory() throws -> URL {
  let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent(
    "cv-\(UUID().uuidString.prefix(8))")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}
