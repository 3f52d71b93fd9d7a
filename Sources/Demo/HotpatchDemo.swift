// hotpatch-demo: starts a multi-threaded process and hotpatches it live (apply, replace, revert),
// showing its output before and after each change and the pause it suffered. Wiring only; the
// scenario is in LiveScenario.swift, the output in Console.swift.
import ArgumentParser
import Foundation
import Glibc

@main
struct HotpatchDemo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotpatch-demo",
        abstract: "Hotpatch a running multi-threaded process live: apply, replace, revert, no restart.",
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
