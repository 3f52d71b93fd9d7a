import AgentProtocol
import ArgumentParser

/// `agentctl history`: what the agent did recently.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show the agent's recent actions, oldest first: time, event, release, message.",
        discussion: """
            Examples:
              agentctl history
              agentctl history --json | jq '.[-1]'
            """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print a JSON array of {time, event, release, message}.")
    var json = false

    func run() throws {
        try AgentExchange.show(.history, global: global, json: json, name: "history", part: \.history,
                               document: { try ControlJSON.document($0) }, text: { ControlText.history($0) })
    }
}
