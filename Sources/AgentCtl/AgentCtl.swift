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

            Exit status: \(ExitStatus.summary([.ok, .refused, .usage, .unavailable, .busy, .protocolError, .noPermission])) \
            (for status, 0 whatever the verdict; `agentctl status --help` for --exit-code). \
            Meanings: \(ExitStatus.documentation).
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
