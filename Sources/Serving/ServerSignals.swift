import Dispatch

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Signal handling for a running server, with Dispatch signal sources (no async-signal-unsafe
/// work in a C handler).
///
/// `SIGTERM`/`SIGINT` stop gracefully (stop accepting, drain, flush the recorder); `SIGHUP`
/// reloads the model. Keep the returned value alive while serving.
public final class ServerSignals {
  private let sources: [any DispatchSourceSignal]

  /// Installs the handlers for `server`.
  ///
  /// - Parameters:
  ///   - server: The server to stop or reload.
  ///   - log: Receives one line per event (default: nothing).
  /// - Returns: The installed sources.
  public static func install(for server: Server, log: @escaping @Sendable (String) -> Void = { _ in })
    -> ServerSignals
  {
    let queue = DispatchQueue(label: "curvalid.signals")
    var sources: [any DispatchSourceSignal] = []
    for number in [SIGTERM, SIGINT, SIGHUP] {
      // The default action must not run: Dispatch observes the signal instead.
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
      if number == SIGHUP {
        source.setEventHandler {
          log("SIGHUP: reloading the model")
          server.reload { result in
            switch result {
            case .success(let model): log("reload: now serving model \(model)")
            case .failure(let error): log("reload refused: \(error.message)")
            }
          }
        }
      } else {
        source.setEventHandler {
          log("signal \(number): draining and stopping")
          // stop() blocks until drained; run it off the signal queue so SIGHUP stays responsive.
          DispatchQueue.global().async {
            do throws(ServingError) {
              try server.stop()
            } catch {
              log("stop: \(error.message)")
            }
          }
        }
      }
      source.resume()
      sources.append(source)
    }
    return ServerSignals(sources: sources)
  }

  private init(sources: [any DispatchSourceSignal]) { self.sources = sources }

  /// Removes the handlers (the signals stay ignored).
  public func cancel() {
    for source in sources { source.cancel() }
  }
}
