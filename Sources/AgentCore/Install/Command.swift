import Engine
import Foundation
import LinuxSystem

/// Runs the few programs the agent needs (dpkg, dpkg-deb, dpkg-query, systemctl) and collects
/// their output. Standard input is /dev/null, so nothing ever waits for an answer.
enum Command {
    /// What a finished command returned.
    struct Outcome {
        var status: Int32
        var output: String
        var errorOutput: String
        /// stderr, or stdout when stderr is empty, for error messages (trimmed to the last 4 KiB).
        var diagnostic: String {
            let text = errorOutput.isEmpty ? output : errorOutput
            return text.utf8.count <= 4096 ? text : "…" + String(decoding: Array(text.utf8).suffix(4096), as: UTF8.self)
        }
    }

    /// Runs `executable` with `arguments` (through `ChildProcess.run`: no Foundation `Process`) and
    /// waits for it; only a failure to start throws. With `timeoutSeconds`, a command still running
    /// then is killed (SIGKILL) and reported with status 128+9; without, the wait is unbounded (dpkg
    /// must never be killed half-way).
    static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                    timeoutSeconds: Double? = nil) throws(AgentCoreError) -> Outcome
    {
        var environment = ProcessInfo.processInfo.environment
        // dpkg refuses to run without the sbin directories (ldconfig, start-stop-daemon) on PATH.
        environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        environment["LC_ALL"] = "C.UTF-8"
        environment.merge(extra) { _, new in new }
        do {
            let finished = try ChildProcess.run(executable, arguments, environment: environment, timeoutSeconds: timeoutSeconds)
            return Outcome(status: finished.status, output: String(decoding: finished.output, as: UTF8.self),
                           errorOutput: String(decoding: finished.errorOutput, as: UTF8.self))
        } catch {
            throw .commandFailed(command: ([executable] + arguments).joined(separator: " "), status: -1,
                                 output: "cannot start \(executable): \(error)")
        }
    }
}
