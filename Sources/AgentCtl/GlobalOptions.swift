import AgentProtocol
import ArgumentParser

/// Options every subcommand shares; accepted before or after the subcommand's name.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The agent's control socket.", valueName: "path"))
    var socket: String = ControlProtocol.defaultSocketPath

    func validate() throws {
        if socket.isEmpty {
            throw ValidationError("--socket is empty: give the agent's control socket, e.g. \(ControlProtocol.defaultSocketPath)")
        }
        let length = socket.utf8.count
        if length > ControlClientError.maximumPathBytes {
            throw ValidationError("--socket is \(length) bytes long; a Unix socket path holds at most \(ControlClientError.maximumPathBytes)")
        }
    }
}
