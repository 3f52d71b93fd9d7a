import AgentProtocol
import ArgumentParser

/// `agentctl enroll`: Enroll the host: the agent takes hotpatches again (root only).
struct EnrollCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Enroll the host: the agent takes hotpatches again (root only).",
        discussion: """
            The choice is persisted across restarts of the agent.

            Example:
              sudo agentctl enroll
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try AgentExchange.perform(ControlRequest(command: .enroll), global: global)
    }
}
