import AgentProtocol
import ArgumentParser

/// `agentctl unenroll`: Unenroll the host: the agent reverts its hotpatches, applies none, and keeps reporting (root only).
struct UnenrollCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unenroll",
        abstract: "Unenroll the host: the agent reverts its hotpatches, applies none, and keeps reporting (root only).",
        discussion: """
            The choice is persisted across restarts of the agent.

            Example:
              sudo agentctl unenroll
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try AgentExchange.perform(ControlRequest(command: .unenroll), global: global)
    }
}
