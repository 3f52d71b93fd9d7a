import AgentProtocol
import ArgumentParser

/// `agentctl`: the client of the hotpatch-agent's control socket.
@main
struct AgentCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentctl",
        abstract: "Ask the running hotpatch-agent how the host stands, and tell it what to do.",
        discussion: """
            Anyone may read (status, processes, history); only root may change anything (check, apply, \
            revert, enroll, unenroll).

            Examples:
              agentctl status
              agentctl status --json | jq .verdict
              agentctl --socket /tmp/agent/control.sock processes
              sudo agentctl check

            Exit status: 0 when the agent answered (for status, whatever the verdict; see \
            `agentctl status --help` for --exit-code), 1 when it refused the request, 64 on a usage error, \
            69 when the agent cannot be reached, 75 when it is busy (too many connections open: try again \
            later), 76 when its answer cannot be read, 77 when refused for lack of permission.
            """,
        subcommands: [
            StatusCommand.self, ProcessesCommand.self, HistoryCommand.self, CheckCommand.self,
            ApplyCommand.self, RevertCommand.self, EnrollCommand.self, UnenrollCommand.self,
        ]
    )

    @OptionGroup var global: GlobalOptions

    /// Without a command there is nothing to do: a usage error (64), not a silent success.
    func run() throws {
        let commands = Self.configuration.subcommands.compactMap { $0.configuration.commandName }.joined(separator: ", ")
        throw ValidationError("a command is required: \(commands)")
    }
}
