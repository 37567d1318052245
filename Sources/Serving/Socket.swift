#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An open file descriptor (socket or pipe end), closed exactly once in `deinit` or `close()`.
///
/// Not `Sendable`: one owner (the event loop thread) uses it.
final class FileDescriptor {
  /// The raw descriptor; -1 once closed.
  private(set) var raw: Int32

  /// Takes ownership of `raw`.
  init(_ raw: Int32) {
    precondition(raw >= 0, "not a file descriptor: \(raw)")
    self.raw = raw
  }

  /// Closes the descriptor now (idempotent).
  func close() {
    guard raw >= 0 else { return }
    // close(2) must not be retried on EINTR on Linux: the descriptor is released either way.
    _ = systemClose(raw)
    raw = -1
  }

  deinit { close() }
}

/// `close(2)`, named apart from `FileDescriptor.close()`.
private func systemClose(_ descriptor: Int32) -> Int32 {
  #if canImport(Glibc)
    Glibc.close(descriptor)
  #else
    Darwin.close(descriptor)
  #endif
}

/// Socket system calls turned into thrown `ServingError`s, with `EINTR` retried.
enum SocketCalls {
  #if os(Linux)
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let sendFlags = Int32(MSG_NOSIGNAL)
  #else
    static let streamType = SOCK_STREAM
    static let sendFlags: Int32 = 0
  #endif

  /// The outcome of one `read`/`write`.
  enum Transfer: Equatable {
    /// This many bytes moved (> 0).
    case bytes(Int)
    /// Nothing now; poll again.
    case wouldBlock
    /// The peer closed (read returned 0).
    case closed
    /// A connection error (`ECONNRESET`, `EPIPE`, …): drop the connection.
    case failed(Int32)
  }

  /// Makes `descriptor` non-blocking and close-on-exec, and on Darwin suppresses `SIGPIPE`.
  static func configure(_ descriptor: Int32, what: String) throws(ServingError) {
    let flags = fcntl(descriptor, F_GETFL)
    guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
      throw .system("set O_NONBLOCK on \(what)")
    }
    guard fcntl(descriptor, F_SETFD, FD_CLOEXEC) == 0 else { throw .system("set FD_CLOEXEC on \(what)") }
    #if canImport(Darwin)
      var one: Int32 = 1
      guard setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
      else { throw .system("set SO_NOSIGPIPE on \(what)") }
    #endif
  }

  /// A non-blocking TCP listener bound to `address`.
  ///
  /// - Returns: The descriptor and the bound port (the system's choice when `address.port` is 0).
  /// - Throws: `ServingError.addressInUse` or `.system` naming the call and address.
  static func tcpListener(_ address: ListenAddress, backlog: Int32) throws(ServingError) -> (
    FileDescriptor, Int
  ) {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = streamType
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
    var list: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(address.host, String(address.port), &hints, &list)
    guard status == 0, let first = list else {
      throw ServingError(
        .invalidConfiguration,
        "cannot resolve listen address \(address): \(String(cString: gai_strerror(status)))")
    }
    defer { freeaddrinfo(list) }
    let info = first.pointee
    let raw = socket(info.ai_family, streamType, 0)
    guard raw >= 0 else { throw .system("socket for \(address)") }
    let descriptor = FileDescriptor(raw)
    var one: Int32 = 1
    guard setsockopt(raw, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
      throw .system("set SO_REUSEADDR on \(address)")
    }
    guard bind(raw, info.ai_addr, info.ai_addrlen) == 0 else {
      if errno == EADDRINUSE { throw ServingError(.addressInUse, "\(address) is already in use") }
      throw .system("bind \(address)")
    }
    guard listen(raw, backlog) == 0 else { throw .system("listen on \(address)") }
    try configure(raw, what: "listener \(address)")
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let named = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(raw, $0, &length) }
    }
    guard named == 0 else { throw .system("getsockname for \(address)") }
    return (descriptor, numericHostAndPort(&storage, length).port)
  }

  /// Fills a `sockaddr_un` for `path`.
  private static func unixAddress(_ path: String) throws(ServingError) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else {
      throw ServingError(
        .invalidConfiguration, "unix socket path is longer than \(capacity - 1) bytes: \(path)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    return address
  }

  /// Whether something accepts connections on the Unix socket at `path`.
  private static func unixSocketIsLive(_ path: String) throws(ServingError) -> Bool {
    var address = try unixAddress(path)
    let raw = socket(AF_UNIX, streamType, 0)
    guard raw >= 0 else { throw .system("socket for probing \(path)") }
    let probe = FileDescriptor(raw)
    defer { probe.close() }
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    if connected == 0 { return true }
    switch errno {
    case ECONNREFUSED, ENOENT: return false
    default: throw .system("probe unix socket \(path)")
    }
  }

  /// A non-blocking Unix socket listener at `path`, mode 0600.
  ///
  /// A stale socket file (nothing accepts on it) is replaced; a live one, or a file that is not a
  /// socket, is refused.
  ///
  /// - Returns: The descriptor and the socket file's inode (to remove only our own file later).
  static func unixListener(path: String, backlog: Int32) throws(ServingError) -> (FileDescriptor, ino_t) {
    var status = stat()
    if lstat(path, &status) == 0 {
      guard status.st_mode & S_IFMT == S_IFSOCK else {
        throw ServingError(.invalidConfiguration, "\(path) exists and is not a socket; not replacing it")
      }
      if try unixSocketIsLive(path) {
        throw ServingError(.addressInUse, "another process is listening on unix socket \(path)")
      }
      guard unlink(path) == 0 || errno == ENOENT else { throw .system("remove stale unix socket \(path)") }
    } else if errno != ENOENT {
      throw .system("stat \(path)")
    }
    var address = try unixAddress(path)
    let raw = socket(AF_UNIX, streamType, 0)
    guard raw >= 0 else { throw .system("socket for \(path)") }
    let descriptor = FileDescriptor(raw)
    // The socket file is created with mode 0600 from the start: no window where others may connect.
    let previousMask = umask(0o177)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    let bindErrno = errno
    umask(previousMask)
    guard bound == 0 else {
      if bindErrno == EADDRINUSE { throw ServingError(.addressInUse, "unix socket \(path) is in use") }
      throw .system("bind unix socket \(path)", errno: bindErrno)
    }
    guard chmod(path, 0o600) == 0 else { throw .system("chmod 0600 \(path)") }
    guard listen(raw, backlog) == 0 else { throw .system("listen on \(path)") }
    try configure(raw, what: "listener \(path)")
    guard lstat(path, &status) == 0 else { throw .system("stat \(path)") }
    return (descriptor, status.st_ino)
  }

  /// Removes the Unix socket file at `path` if it is still the one with inode `inode`.
  static func removeUnixSocket(path: String, inode: ino_t) {
    var status = stat()
    if lstat(path, &status) == 0, status.st_ino == inode, status.st_mode & S_IFMT == S_IFSOCK {
      _ = unlink(path)
    }
  }

  /// Accepts one pending connection.
  ///
  /// - Returns: The connection and its peer (`IP:PORT`, or `unix`), or `nil` when none is pending
  ///   or the connection was aborted before it was accepted.
  /// - Throws: `.system` for failures of the listener itself (e.g. `EMFILE`).
  static func accept(_ listener: FileDescriptor, unix: Bool) throws(ServingError) -> (FileDescriptor, String)?
  {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    while true {
      let raw = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          #if canImport(Glibc)
            Glibc.accept(listener.raw, $0, &length)
          #else
            Darwin.accept(listener.raw, $0, &length)
          #endif
        }
      }
      if raw >= 0 {
        let descriptor = FileDescriptor(raw)
        try configure(raw, what: "connection")
        if !unix {
          // Replies are small and complete: send them at once instead of waiting for Nagle.
          var one: Int32 = 1
          guard
            setsockopt(raw, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
          else { throw .system("set TCP_NODELAY on connection") }
        }
        let peer = unix ? "unix" : numericHostAndPort(&storage, length).text
        return (descriptor, peer)
      }
      switch errno {
      case EINTR: continue
      case EAGAIN, EWOULDBLOCK, ECONNABORTED, EPROTO: return nil
      default: throw .system("accept")
      }
    }
  }

  /// The numeric host and port of a socket address.
  private static func numericHostAndPort(_ storage: inout sockaddr_storage, _ length: socklen_t)
    -> (text: String, port: Int)
  {
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
    let status = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        getnameinfo(
          $0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
          NI_NUMERICHOST | NI_NUMERICSERV)
      }
    }
    guard status == 0 else { return ("unknown", 0) }
    let hostText = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let serviceText = String(
      decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let port = Int(serviceText) ?? 0
    return (hostText.contains(":") ? "[\(hostText)]:\(port)" : "\(hostText):\(port)", port)
  }

  /// Reads what is available into `buffer`.
  static func read(_ descriptor: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) -> Transfer {
    while true {
      let count = recv(descriptor.raw, buffer.baseAddress, buffer.count, 0)
      if count > 0 { return .bytes(count) }
      if count == 0 { return .closed }
      switch errno {
      case EINTR: continue
      case EAGAIN, EWOULDBLOCK: return .wouldBlock
      default: return .failed(errno)
      }
    }
  }

  /// Writes as much of `bytes` as the socket takes now.
  static func write(_ descriptor: FileDescriptor, _ bytes: UnsafeRawBufferPointer) -> Transfer {
    while true {
      let count = send(descriptor.raw, bytes.baseAddress, bytes.count, sendFlags)
      if count > 0 { return .bytes(count) }
      if count == 0 { return .wouldBlock }
      switch errno {
      case EINTR: continue
      case EAGAIN, EWOULDBLOCK: return .wouldBlock
      default: return .failed(errno)
      }
    }
  }
}

/// A self-pipe that wakes the event loop's `poll` from other threads.
///
/// `Sendable`: `wake()` only calls `write(2)`, which is safe from any thread; the descriptors are
/// closed in `deinit`, when no thread can use the pipe any more.
final class WakePipe: @unchecked Sendable {
  /// The end the event loop polls.
  let readEnd: Int32
  private let writeEnd: Int32

  /// Opens a non-blocking pipe.
  init() throws(ServingError) {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { throw .system("pipe") }
    readEnd = ends[0]
    writeEnd = ends[1]
    for end in ends {
      let flags = fcntl(end, F_GETFL)
      guard flags >= 0, fcntl(end, F_SETFL, flags | O_NONBLOCK) == 0, fcntl(end, F_SETFD, FD_CLOEXEC) == 0
      else {
        let number = errno
        _ = systemClose(ends[0])
        _ = systemClose(ends[1])
        throw .system("configure wake pipe", errno: number)
      }
    }
  }

  /// Wakes the poller (a full pipe already guarantees a wake-up).
  func wake() {
    var byte: UInt8 = 1
    while systemWriteByte(writeEnd, &byte) < 0 && errno == EINTR {}
  }

  /// Empties the pipe.
  func drain() {
    var scratch = [UInt8](repeating: 0, count: 256)
    while true {
      let count = scratch.withUnsafeMutableBytes { systemReadBytes(readEnd, $0.baseAddress, $0.count) }
      if count > 0 { continue }
      if count < 0 && errno == EINTR { continue }
      return
    }
  }

  deinit {
    _ = systemClose(readEnd)
    _ = systemClose(writeEnd)
  }
}

private func systemWriteByte(_ descriptor: Int32, _ byte: UnsafeMutablePointer<UInt8>) -> Int {
  #if canImport(Glibc)
    Glibc.write(descriptor, byte, 1)
  #else
    Darwin.write(descriptor, byte, 1)
  #endif
}

private func systemReadBytes(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
  #if canImport(Glibc)
    Glibc.read(descriptor, buffer, count)
  #else
    Darwin.read(descriptor, buffer, count)
  #endif
}
