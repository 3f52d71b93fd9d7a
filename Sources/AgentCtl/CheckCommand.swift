import AgentProtocol
import ArgumentParser

/// `agentctl check`: poll the channel now and wait for the cycle.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Poll the channel now, wait for the agent's cycle to finish, and show the status (root only).",
        discussion: """
            Waits up to \(Int(ControlClient.checkTimeoutSeconds)) seconds for the cycle.

            Example:
              sudo agentctl check
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let response = try AgentExchange.send(ControlRequest(command: .check), global: global)
        guard let status = response.status else { throw AgentExchange.missing("status") }
        print(ControlText.status(status))
    }
}
