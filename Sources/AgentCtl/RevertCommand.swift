import AgentProtocol
import ArgumentParser
import Foundation

/// `agentctl revert ID`: Revert a release in every process and hold it until `agentctl apply` (root only).
struct RevertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert",
        abstract: "Revert a release in every process and hold it until `agentctl apply` (root only).",
        discussion: """
            Example:
              sudo agentctl revert openssl-2024-05-l2
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The release id, as `agentctl status` or `agentctl history` shows it.")
    var id: String

    func validate() throws {
        guard !id.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("the release id must not be empty")
        }
    }

    func run() throws {
        try AgentExchange.perform(ControlRequest(command: .revert, id: id), global: global)
    }
}
