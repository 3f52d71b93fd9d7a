import Foundation

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

    /// Runs `executable` with `arguments` and waits for it; only a failure to start throws.
    static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:])
        throws(AgentCoreError) -> Outcome
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        // dpkg refuses to run without the sbin directories (ldconfig, start-stop-daemon) on PATH.
        environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        environment["LC_ALL"] = "C.UTF-8"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let output = Pipe(), errorOutput = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = errorOutput
        do {
            try process.run()
        } catch {
            throw .commandFailed(command: ([executable] + arguments).joined(separator: " "), status: -1, output: "\(error)")
        }
        // Both pipes are drained at once: a child blocked on a full stderr pipe would never finish stdout.
        let errorBytes = PipeReader(errorOutput.fileHandleForReading)
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errorBytes.wait()
        process.waitUntilExit()
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return Outcome(status: status, output: String(decoding: outputData, as: UTF8.self),
                       errorOutput: String(decoding: errorData, as: UTF8.self))
    }
}

/// Reads a pipe to its end on another thread.
private final class PipeReader: @unchecked Sendable {
    // Written once by the reading thread before `done` is signalled, read only after it.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
