import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Messages other threads send to the event loop.
enum LoopMessage: Sendable {
  /// The reply for request `sequence` of connection `connection` is ready.
  case reply(connection: UInt64, sequence: UInt64, bytes: [UInt8])
  /// Stop accepting, finish what was received, then exit.
  case drain
}

/// The thread-safe inbox of the event loop: a locked message list and a self-pipe to wake `poll`.
final class LoopMailbox: Sendable {
  private let messages = Locked<[LoopMessage]>([])
  /// The pipe `poll` watches.
  let pipe: WakePipe

  /// Opens the wake-up pipe.
  init() throws(ServingError) { pipe = try WakePipe() }

  /// Delivers a message and wakes the loop.
  func post(_ message: LoopMessage) {
    messages.withLock { $0.append(message) }
    pipe.wake()
  }

  /// Takes every delivered message.
  func take() -> [LoopMessage] {
    pipe.drain()
    return messages.withLock { list in
      let taken = list
      list.removeAll(keepingCapacity: true)
      return taken
    }
  }
}

/// Where the event loop sends each request line.
protocol RequestRouting: Sendable {
  /// Handles one parsed request of connection `connection`, sequence `sequence`.
  ///
  /// - Returns: The reply at once, or `nil` when it will be posted to the mailbox later.
  func route(_ line: ParsedLine, receivedAt: Double, connection: UInt64, sequence: UInt64, peer: String)
    -> [UInt8]?
}

/// One client connection, owned by the event loop thread.
final class Connection {
  let id: UInt64
  let descriptor: FileDescriptor
  let peer: String
  var framer: LineFramer
  /// Sequence number of the next request line.
  var nextSequence: UInt64 = 0
  /// The oldest request whose reply has not been queued for writing.
  var nextToWrite: UInt64 = 0
  /// Replies that arrived ahead of an earlier one.
  var ready: [UInt64: [UInt8]] = [:]
  /// Bytes queued for the socket, from `outputOffset` on.
  var output: [UInt8] = []
  var outputOffset = 0
  /// Last time a byte moved in either direction.
  var lastActivity: Double
  /// When the first byte of the current unfinished line arrived.
  var partialSince: Double?
  /// No more reading: the peer half-closed, a fatal line error, or draining.
  var readingClosed = false
  /// Close as soon as every queued reply is written.
  var closeWhenFlushed = false

  init(id: UInt64, descriptor: FileDescriptor, peer: String, maxLineBytes: Int, now: Double) {
    self.id = id
    self.descriptor = descriptor
    self.peer = peer
    self.framer = LineFramer(maxLineBytes: maxLineBytes)
    self.lastActivity = now
  }

  /// Requests received whose replies have not been queued for writing.
  var outstanding: Int { Int(nextSequence - nextToWrite) }

  /// Bytes still to write.
  var pendingOutput: Int { output.count - outputOffset }

  /// Nothing is owed to the client.
  var isQuiescent: Bool { outstanding == 0 && pendingOutput == 0 }

  /// Stores a reply and moves every reply that is next in order to the output.
  func deliver(sequence: UInt64, bytes: [UInt8]) {
    ready[sequence] = bytes
    while let next = ready.removeValue(forKey: nextToWrite) {
      output.append(contentsOf: next)
      nextToWrite += 1
    }
  }
}

/// The single I/O thread: accepts connections, frames lines, routes requests, writes replies in
/// request order, and enforces the connection limits and timeouts.
///
/// Why one thread with `poll(2)` rather than a thread per connection: the 2-core machine should
/// spend its cores on the encoder, and 1,000 idle connections must stay cheap (a few KiB each
/// instead of a thread stack each). Parsing a line is microseconds against milliseconds of scoring,
/// so one I/O thread is not the bottleneck.
///
/// `@unchecked Sendable`: after `run()` starts, every stored property is used only on the loop's
/// thread; other threads talk to it through `mailbox`.
final class EventLoop: @unchecked Sendable {
  private struct Listener {
    let descriptor: FileDescriptor
    let unixPath: String?
    let inode: ino_t
  }

  private let configuration: ServerConfiguration
  private let router: any RequestRouting
  private let statistics: ServerStatistics
  let mailbox: LoopMailbox
  private var listeners: [Listener] = []
  private var connections: [UInt64: Connection] = [:]
  private var nextConnectionID: UInt64 = 0
  private var drainDeadline: Double?
  private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
  /// Stop reading from a connection while this much output waits for a slow reader.
  private let outputHighWater = 4 << 20

  /// Binds every configured listener.
  ///
  /// - Throws: `ServingError` from binding; nothing stays bound on failure.
  init(configuration: ServerConfiguration, router: any RequestRouting, statistics: ServerStatistics)
    throws(ServingError)
  {
    self.configuration = configuration
    self.router = router
    self.statistics = statistics
    self.mailbox = try LoopMailbox()
    for address in configuration.tcpAddresses {
      let (descriptor, port) = try SocketCalls.tcpListener(address, backlog: 512)
      listeners.append(Listener(descriptor: descriptor, unixPath: nil, inode: 0))
      boundTCPPorts.append(port)
    }
    if let path = configuration.unixSocketPath {
      let (descriptor, inode) = try SocketCalls.unixListener(path: path, backlog: 512)
      listeners.append(Listener(descriptor: descriptor, unixPath: path, inode: inode))
    }
  }

  /// The TCP ports bound, in `tcpAddresses` order.
  private(set) var boundTCPPorts: [Int] = []

  /// Runs until drained; then closes every socket and removes the Unix socket file.
  func run() {
    while true {
      let now = monotonicSeconds()
      for message in mailbox.take() { handle(message, now: now) }
      enforceTimeouts(now: now)
      for connection in Array(connections.values) { flush(connection) }
      if let deadline = drainDeadline, connections.isEmpty || now >= deadline { break }
      pollOnce(now: now)
    }
    for connection in Array(connections.values) { close(connection) }
    closeListeners()
  }

  private func handle(_ message: LoopMessage, now: Double) {
    switch message {
    case .reply(let id, let sequence, let bytes):
      connections[id]?.deliver(sequence: sequence, bytes: bytes)
    case .drain:
      guard drainDeadline == nil else { return }
      drainDeadline = now + configuration.drainTimeout
      closeListeners()
      for connection in connections.values {
        connection.readingClosed = true
        connection.closeWhenFlushed = true
      }
    }
  }

  private func closeListeners() {
    for listener in listeners {
      listener.descriptor.close()
      if let path = listener.unixPath { SocketCalls.removeUnixSocket(path: path, inode: listener.inode) }
    }
    listeners.removeAll()
  }

  private func close(_ connection: Connection) {
    connection.descriptor.close()
    if connections.removeValue(forKey: connection.id) != nil {
      statistics.recordConnection(opened: false)
    }
  }

  /// Whether the loop should read more from `connection` now.
  private func wantsInput(_ connection: Connection) -> Bool {
    !connection.readingClosed && connection.outstanding < configuration.maxPipelinedRequests
      && connection.pendingOutput < outputHighWater
  }

  private func enforceTimeouts(now: Double) {
    for connection in Array(connections.values) {
      if let since = connection.partialSince, wantsInput(connection),
        now - since >= configuration.slowSenderTimeout
      {
        let sequence = connection.nextSequence
        connection.nextSequence += 1
        statistics.recordError(.timeout)
        connection.deliver(
          sequence: sequence,
          bytes: WireProtocol.errorReply(
            id: nil,
            ReplyError(
              .timeout, "the request line was not completed within \(configuration.slowSenderTimeout) s")))
        connection.readingClosed = true
        connection.closeWhenFlushed = true
        connection.partialSince = nil
      } else if connection.isQuiescent && connection.partialSince == nil
        && now - connection.lastActivity >= configuration.idleTimeout
      {
        close(connection)
      }
    }
  }

  /// The next instant a timeout may fire, for `poll`'s timeout.
  private func nextDeadline() -> Double? {
    var deadline = drainDeadline
    for connection in connections.values {
      let candidate: Double?
      if let since = connection.partialSince {
        candidate = since + configuration.slowSenderTimeout
      } else if connection.isQuiescent {
        candidate = connection.lastActivity + configuration.idleTimeout
      } else {
        candidate = nil
      }
      if let candidate { deadline = min(deadline ?? candidate, candidate) }
    }
    return deadline
  }

  private func pollOnce(now: Double) {
    var descriptors: [pollfd] = [pollfd(fd: mailbox.pipe.readEnd, events: Int16(POLLIN), revents: 0)]
    for listener in listeners {
      descriptors.append(pollfd(fd: listener.descriptor.raw, events: Int16(POLLIN), revents: 0))
    }
    let polled = Array(connections.values)
    for connection in polled {
      var events: Int16 = 0
      if wantsInput(connection) { events |= Int16(POLLIN) }
      if connection.pendingOutput > 0 { events |= Int16(POLLOUT) }
      descriptors.append(pollfd(fd: connection.descriptor.raw, events: events, revents: 0))
    }
    var timeout: Int32 = 1_000
    if let deadline = nextDeadline() {
      timeout = Int32(max(0, min(1_000, ((deadline - now) * 1_000).rounded(.up))))
    }
    let count = poll(&descriptors, nfds_t(descriptors.count), timeout)
    guard count > 0 else { return }  // timeout, or EINTR: the loop re-evaluates
    let now = monotonicSeconds()
    for (index, listener) in listeners.enumerated() where descriptors[1 + index].revents != 0 {
      acceptConnections(listener, now: now)
    }
    let offset = 1 + listeners.count
    for (index, connection) in polled.enumerated() {
      let events = descriptors[offset + index].revents
      guard events != 0, connections[connection.id] != nil else { continue }
      if events & Int16(POLLIN) != 0 {
        readAvailable(connection, now: now)
      } else if events & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
        close(connection)
        continue
      }
      if events & Int16(POLLOUT) != 0 { flush(connection) }
    }
  }

  private func acceptConnections(_ listener: Listener, now: Double) {
    for _ in 0..<64 {
      let accepted: (FileDescriptor, String)?
      do {
        accepted = try SocketCalls.accept(listener.descriptor, unix: listener.unixPath != nil)
      } catch {
        // EMFILE and friends: leave the connection in the backlog; the loop retries next round.
        return
      }
      guard let (descriptor, peer) = accepted else { return }
      if connections.count >= configuration.maxConnections {
        statistics.recordConnection(opened: nil)
        let reply = WireProtocol.errorReply(
          id: nil, ReplyError(.overloaded, "too many connections (limit \(configuration.maxConnections))"))
        _ = reply.withUnsafeBytes { SocketCalls.write(descriptor, $0) }
        descriptor.close()
        continue
      }
      nextConnectionID += 1
      let connection = Connection(
        id: nextConnectionID, descriptor: descriptor, peer: peer, maxLineBytes: configuration.maxLineBytes,
        now: now)
      connections[connection.id] = connection
      statistics.recordConnection(opened: true)
    }
  }

  private func readAvailable(_ connection: Connection, now: Double) {
    for _ in 0..<4 where wantsInput(connection) {
      let transfer = readBuffer.withUnsafeMutableBytes { SocketCalls.read(connection.descriptor, into: $0) }
      switch transfer {
      case .bytes(let count):
        connection.lastActivity = now
        readBuffer.withUnsafeBytes {
          connection.framer.append(UnsafeRawBufferPointer(rebasing: $0[0..<count]))
        }
        processLines(connection, now: now)
      case .wouldBlock:
        return
      case .closed:
        // Half-close: answer what was sent, then close (`echo … | nc host port` works).
        connection.readingClosed = true
        connection.closeWhenFlushed = true
        connection.partialSince = nil
        return
      case .failed:
        close(connection)
        return
      }
    }
  }

  /// Routes every complete buffered line, as far as the pipelining limit allows.
  private func processLines(_ connection: Connection, now: Double) {
    while !connection.readingClosed && connection.outstanding < configuration.maxPipelinedRequests {
      guard let frame = connection.framer.next() else { break }
      let sequence = connection.nextSequence
      connection.nextSequence += 1
      switch frame {
      case .tooLong:
        statistics.recordError(.lineTooLong)
        connection.deliver(
          sequence: sequence,
          bytes: WireProtocol.errorReply(
            id: nil,
            ReplyError(.lineTooLong, "the request line is longer than \(configuration.maxLineBytes) bytes")))
        connection.readingClosed = true
        connection.closeWhenFlushed = true
        connection.partialSince = nil
        return
      case .line(let bytes):
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
          connection.nextSequence -= 1  // blank lines are ignored
          continue
        }
        let parsed = WireProtocol.parse(
          bytes, maxPromptScalars: configuration.maxPromptScalars, trustedRoles: configuration.trustedRoles)
        if let reply = router.route(
          parsed, receivedAt: now, connection: connection.id, sequence: sequence, peer: connection.peer)
        {
          connection.deliver(sequence: sequence, bytes: reply)
        }
      }
    }
    if connection.framer.hasPartialLine && connection.outstanding < configuration.maxPipelinedRequests {
      if connection.partialSince == nil { connection.partialSince = now }
    } else {
      connection.partialSince = nil
    }
  }

  /// Writes queued output; closes the connection when it is finished with.
  private func flush(_ connection: Connection) {
    guard connections[connection.id] != nil else { return }
    while connection.pendingOutput > 0 {
      let transfer = connection.output.withUnsafeBytes {
        SocketCalls.write(
          connection.descriptor, UnsafeRawBufferPointer(rebasing: $0[connection.outputOffset...]))
      }
      switch transfer {
      case .bytes(let count):
        connection.outputOffset += count
        connection.lastActivity = monotonicSeconds()
      case .wouldBlock:
        return
      case .closed, .failed:
        close(connection)
        return
      }
    }
    connection.output.removeAll(keepingCapacity: connection.output.capacity <= 1 << 16)
    connection.outputOffset = 0
    if connection.closeWhenFlushed && connection.outstanding == 0 {
      close(connection)
      return
    }
    // Replies made room under the pipelining limit: frame lines that were held back.
    if !connection.readingClosed, connection.framer.hasPartialLine {
      let before = connection.outstanding
      if before < configuration.maxPipelinedRequests { processLines(connection, now: monotonicSeconds()) }
    }
  }
}
