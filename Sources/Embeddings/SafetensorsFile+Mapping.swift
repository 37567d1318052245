#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension SafetensorsFile {
  /// A whole file mapped read-only (`PROT_READ`, `MAP_PRIVATE`); the owner calls `unmap()` once.
  struct Mapping {
    /// The first byte of the mapping.
    let base: UnsafeRawPointer
    /// The file's size in bytes when it was mapped.
    let length: Int

    /// Wraps an existing mapping (used to release it).
    init(base: UnsafeRawPointer, length: Int) {
      self.base = base
      self.length = length
    }

    /// Opens, measures and maps the file at `path`, then closes the descriptor.
    ///
    /// - Throws: `.fileNotFound`, `.unreadable` (not a regular file, `open`/`fstat`/`mmap`
    ///   failures) or `.invalidHeader` when the file is shorter than the 8-byte length prefix
    ///   (such a file, in particular an empty one, is never mapped).
    init(path: String) throws(EmbeddingsError) {
      let descriptor = try Self.openForReading(path)
      defer { _ = close(descriptor) }

      var status = stat()
      guard fstat(descriptor, &status) == 0 else {
        throw SafetensorsFile.systemError("cannot inspect", path, errno)
      }
      guard (status.st_mode & S_IFMT) == S_IFREG else {
        throw EmbeddingsError(.unreadable, "\(path): not a regular file")
      }
      let size = Int(status.st_size)
      guard size >= 8 else {
        throw EmbeddingsError(
          .invalidHeader,
          "\(path): file is \(size) bytes, shorter than the 8-byte safetensors header length")
      }
      let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
      guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
        throw SafetensorsFile.systemError("cannot map", path, errno)
      }
      self.base = UnsafeRawPointer(address)
      self.length = size
    }

    /// Releases the mapping; a failure here would be a programming error.
    func unmap() {
      let result = munmap(UnsafeMutableRawPointer(mutating: base), length)
      precondition(result == 0, "munmap failed with errno \(errno)")
    }

    private static func openForReading(_ path: String) throws(EmbeddingsError) -> Int32 {
      while true {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 { return descriptor }
        if errno != EINTR { throw SafetensorsFile.systemError("cannot open", path, errno) }
      }
    }
  }

  /// An error for a failed system call on `path`, with the C library's explanation.
  ///
  /// - Parameters:
  ///   - action: What was attempted, e.g. "cannot open".
  ///   - path: The file involved.
  ///   - code: The `errno` value; `ENOENT` maps to `.fileNotFound`, anything else to `.unreadable`.
  static func systemError(_ action: String, _ path: String, _ code: Int32) -> EmbeddingsError {
    let reason = String(cString: strerror(code))
    return EmbeddingsError(code == ENOENT ? .fileNotFound : .unreadable, "\(path): \(action): \(reason)")
  }
}
