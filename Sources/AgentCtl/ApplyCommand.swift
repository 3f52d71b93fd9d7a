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

    @Argument(help: "The release id, as `agentctl status` or `agentctl history` shows it.")
    var id: String

    func validate() throws {
        guard !id.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("the release id must not be empty")
        }
    }

    func run() throws {
        try AgentExchange.perform(ControlRequest(command: .apply, id: id), global: global)
    }
}
