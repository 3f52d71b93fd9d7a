// hotpatch-demo: shows the product at work. By default (`agent`) the real hotpatch-agent keeps a
// running service patched from a signed channel; `engine` patches a process with the Engine alone.
// Wiring only; the scenarios are in AgentScenario.swift and LiveScenario.swift.
import ArgumentParser
import Artifact
import Foundation
import Glibc

@main
struct HotpatchDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpatch-demo",
        abstract: "Show hotpatch-agent patching a running service live, from a signed channel.",
        discussion: """
            `hotpatch-demo` (or `hotpatch-demo agent`) runs the real hotpatch-agent, agentctl and \
            hotpatch-pack in a private temporary directory; `hotpatch-demo engine` patches a process \
            with the Engine alone and shows each pause. Both need root (ptrace of another process).
            """,
        subcommands: [AgentDemo.self, EngineDemo.self],
        defaultSubcommand: AgentDemo.self)
}

/// `hotpatch-demo agent`: the product end to end.
struct AgentDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run hotpatch-agent against a demo service and a signed channel: two hotpatch levels, then a baseline.",
        discussion: """
            Everything lives in a private temporary directory (channel, keys, agent state, control \
            socket, reboot-required file, files the baseline installs), removed at the end, on \
            failure and on Ctrl-C. Needs hotpatch-agent, agentctl and hotpatch-pack beside this \
            binary (scripts/demo builds them). Exits 0 only if every step behaved as expected.
            """)

    @Option(name: .long, help: "Busy threads in the demo service.")
    var threads = 4

    @Flag(name: .long, help: "Show the agent's log lines whole, with their key=value fields.")
    var fullLog = false

    func validate() throws {
        guard (1...512).contains(threads) else { throw ValidationError("--threads must be between 1 and 512.") }
    }

    func run() throws {
        let console = AgentConsole(fullLog: fullLog)
        if let problem = Preconditions.problem() {
            console.refuse(problem)
            throw ExitCode(2)
        }
        let products = Products.directory()
        if let problem = Products.missing(in: products) {
            console.refuse(problem)
            throw ExitCode(2)
        }
        Interruption.shared.install()
        let outcome = AgentScenario(threads: threads, products: products, console: console).run()
        console.finish(outcome)
        if outcome.interrupted { throw ExitCode(Interruption.shared.exitStatus) }
        if outcome.error != nil { throw ExitCode.failure }
    }
}

/// `hotpatch-demo engine`: the Engine alone, with the pause of each change.
struct EngineDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Hotpatch a running multi-threaded process with the Engine alone: apply, replace, revert, no restart.",
        discussion: """
            Builds the C fixtures (a victim service and two cumulative hotpatch levels), starts the \
            victim with busy threads, and patches it with the Engine while it runs. Exits 0 only if \
            every step behaved as expected. Needs root (ptrace of another process).
            """)

    @Option(name: .long, help: "Busy threads in the victim.")
    var threads = 8

    @Option(name: .long, help: "Seconds to watch the victim's output in each phase.")
    var seconds = 2.0

    @Flag(name: .long, help: "Print one JSON document instead of the human summary.")
    var json = false

    func validate() throws {
        guard (1...512).contains(threads) else { throw ValidationError("--threads must be between 1 and 512.") }
        guard seconds >= 0.3, seconds <= 600 else { throw ValidationError("--seconds must be between 0.3 and 600.") }
    }

    func run() throws {
        let console = Console(json: json)
        if let problem = Preconditions.problem() {
            console.refuse(problem)
            throw ExitCode(2)
        }
        let record = LiveScenario(threads: threads, secondsPerPhase: seconds, console: console).run()
        console.finish(record)
        if !record.ok { throw ExitCode.failure }
    }
}

/// What must hold before anything is built or started.
enum Preconditions {
    /// A message for a person, or nil when the demo can run.
    static func problem() -> String? {
        if geteuid() != 0 {
            return "must run as root: it attaches to another process with ptrace and writes "
                + "its code through /proc/PID/mem. Run it with sudo, or use scripts/demo."
        }
        if executable(named: "cc") == nil {
            return "no C compiler (cc) on PATH: the demo compiles its victim and patch objects. "
                + "Install one with scripts/setup-deps (or: apt-get install gcc)."
        }
        return nil
    }

    /// The first executable called `name` on PATH.
    static func executable(named name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = "\(folder)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}
