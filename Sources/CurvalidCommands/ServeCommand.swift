/// `curvalid serve`: the detection service (built in the service issue).
enum ServeCommand {
  static let help = """
    usage: curvalid serve [OPTIONS]

    Serves the detector over line-delimited JSON on TCP and Unix sockets. Not available yet: the
    service lands with the detection-service issue; `bash server/serve.sh` is already the command
    that will start it.

    """

  static func run(_ raw: [String]) throws(CommandError) -> Int32 {
    let arguments = try Arguments(raw, options: [], flags: [])
    if arguments.flag("help") {
      print(help, terminator: "")
      return 0
    }
    throw .failure("serve is coming: the detection service is not built yet (see README.md)")
  }
}
