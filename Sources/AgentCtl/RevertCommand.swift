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

    @OptionGroup var release: ReleaseArgument

    func run() throws {
        try AgentExchange.perform(ControlRequest(command: .revert, id: release.id), global: global)
    }
}
