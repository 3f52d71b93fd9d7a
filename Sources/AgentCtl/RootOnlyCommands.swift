import AgentProtocol
import ArgumentParser

/// A command that asks the agent to change what it does (root only): one request, the answer printed.
protocol RootOnlyRequestCommand: ParsableCommand {
    /// The socket and timeout options.
    var global: GlobalOptions { get }
    /// What to ask the agent.
    var request: ControlRequest { get }
}

extension RootOnlyRequestCommand {
    /// Sends the request and prints the agent's answer.
    func run() throws { try AgentExchange.perform(request, global: global) }
}

extension CommandConfiguration {
    /// The help of a root-only command: its abstract, an optional note, and one example.
    static func rootOnly(_ name: String, abstract: String, note: String? = nil, example: String) -> CommandConfiguration {
        CommandConfiguration(commandName: name, abstract: abstract,
                             discussion: (note.map { $0 + "\n\n" } ?? "") + "Example:\n  " + example)
    }
}

/// `agentctl apply ID`: Lift a hold or quarantine on a release and apply it (root only).
struct ApplyCommand: RootOnlyRequestCommand {
    static let configuration = CommandConfiguration.rootOnly(
        "apply", abstract: "Lift a hold or quarantine on a release and apply it (root only).",
        example: "sudo agentctl apply openssl-2024-05-l2")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var release: ReleaseArgument
    var request: ControlRequest { ControlRequest(command: .apply, id: release.id) }
}

/// `agentctl revert ID`: Revert a release in every process and hold it until `agentctl apply` (root only).
struct RevertCommand: RootOnlyRequestCommand {
    static let configuration = CommandConfiguration.rootOnly(
        "revert", abstract: "Revert a release in every process and hold it until `agentctl apply` (root only).",
        example: "sudo agentctl revert openssl-2024-05-l2")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var release: ReleaseArgument
    var request: ControlRequest { ControlRequest(command: .revert, id: release.id) }
}

/// `agentctl enroll`: Enroll the host: the agent takes hotpatches again (root only).
struct EnrollCommand: RootOnlyRequestCommand {
    static let configuration = CommandConfiguration.rootOnly(
        "enroll", abstract: "Enroll the host: the agent takes hotpatches again (root only).",
        note: "The choice is persisted across restarts of the agent.", example: "sudo agentctl enroll")
    @OptionGroup var global: GlobalOptions
    var request: ControlRequest { ControlRequest(command: .enroll) }
}

/// `agentctl unenroll`: Unenroll the host: the agent reverts its hotpatches, applies none, and keeps reporting (root only).
struct UnenrollCommand: RootOnlyRequestCommand {
    static let configuration = CommandConfiguration.rootOnly(
        "unenroll", abstract: "Unenroll the host: the agent reverts its hotpatches, applies none, and keeps reporting (root only).",
        note: "The choice is persisted across restarts of the agent.", example: "sudo agentctl unenroll")
    @OptionGroup var global: GlobalOptions
    var request: ControlRequest { ControlRequest(command: .unenroll) }
}
