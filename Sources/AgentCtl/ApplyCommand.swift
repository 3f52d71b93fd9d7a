import AgentProtocol
import ArgumentParser
import Foundation

/// `agentctl apply ID`: Lift a hold or quarantine on a release and apply it (root only).
struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Lift a hold or quarantine on a release and apply it (root only).",
        discussion: """
            Example:
              sudo agentctl apply openssl-2024-05-l2
            """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var release: ReleaseArgument

    func run() throws {
        try AgentExchange.perform(ControlRequest(command: .apply, id: release.id), global: global)
    }
}
