import AgentProtocol
import ArgumentParser

/// Options every subcommand shares; accepted before or after the subcommand's name.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The agent's control socket.", valueName: "path"))
    var socket: String = ControlProtocol.defaultSocketPath
}
