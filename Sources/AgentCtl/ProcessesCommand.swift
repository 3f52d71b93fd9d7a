import AgentProtocol
import ArgumentParser

/// `agentctl processes`: each process that maps a targeted object, and its state.
struct ProcessesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "processes",
        abstract: "List the processes that map a targeted object: patched, pending or unpatchable, and why.",
        discussion: """
            Columns: PID, STATE, PAUSE (the last patch's pause), EXECUTABLE, REASON.

            Examples:
              agentctl processes
              agentctl processes --json | jq '.[] | select(.state == "unpatchable")'
            """
    )

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print a JSON array of {pid, executable, state, reason, pauseUsec, hotpatch}.")
    var json = false

    func run() throws {
        try AgentExchange.show(.processes, global: global, json: json, name: "process list", part: \.processes,
                               document: { try ControlJSON.document($0) }, text: { ControlText.processes($0) })
    }
}
