import AgentProtocol
import ArgumentParser
import Foundation

/// `agentctl status`: the host's verdict and why.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the host's verdict, baseline, hotpatch, processes, reboot and channel state.",
        discussion: """
            The first line is the verdict: up to date, hotpatch pending, reboot required, exposed or \
            unenrolled (by precedence); every reason that holds follows.

            Exits 0 whenever the agent answered, whatever the verdict. With --exit-code the verdict \
            becomes the exit status, for monitoring: \(ExitStatus.verdictSummary). Meanings of these \
            and the other statuses: \(ExitStatus.documentation).

            Examples:
              agentctl status
              agentctl status --json
              agentctl status --exit-code >/dev/null || echo "host needs attention"
            """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print the status as JSON (schema: docs/STATUS.md); stdout holds only the document.")
    var json = false

    @Flag(name: .long, help: "Exit with the verdict's status: \(ExitStatus.verdictSummary).")
    var exitCode = false

    func run() throws {
        let status = try AgentExchange.show(.status, global: global, json: json, name: "status", part: \.status,
                                            document: { try ControlJSON.document($0) }, text: { ControlText.status($0) })
        if exitCode && status.verdict.exitCode != 0 {
            throw ExitCode(status.verdict.exitCode)
        }
    }
}
