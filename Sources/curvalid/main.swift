import CurvalidCommands
import Foundation

exit(CurvalidCLI.run(Array(CommandLine.arguments.dropFirst())))
