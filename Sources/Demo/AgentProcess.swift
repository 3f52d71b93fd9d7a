import Engine
import Foundation
import Glibc
import LinuxSystem

/// The real `hotpatch-agent` running in the foreground as the demo's child, in a process group of
/// its own. Its standard output and error are read by a thread that hands each line to `onLine`.
final class AgentProcess: @unchecked Sendable {
    // @unchecked: `ended` and `status` are touched under `lock`; the reader thread only reads the pipe.
    let pid: Int32
    private let output: Int32
    private let lock = NSLock()
    private var ended = false
    private var status: Int32 = 0
    private let readerDone = DispatchSemaphore(value: 0)

    /// Variables that would tie the child to the demo's own service manager or journal.
    static let removedEnvironment: Set<String> = ["NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "JOURNAL_STREAM",
                                                   "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]

    /// Starts `path` with `arguments`; every line it prints goes to `onLine` (on another thread).
    init(_ path: String, _ arguments: [String], onLine: @escaping @Sendable (String) -> Void) throws {
        let pipe: (read: Int32, write: Int32)
        do { pipe = try ChildProcess.pipe() } catch { throw DemoFailure("\(error)") }
        defer { close(pipe.write) }
        // A process group of its own: a terminal's Ctrl-C reaches only the demo, which stops the agent itself.
        let environment = ProcessInfo.processInfo.environment.filter { !Self.removedEnvironment.contains($0.key) }
        do {
            pid = try ChildProcess.spawn(path, arguments, environment: environment, standardInput: .null,
                                         standardOutput: .descriptor(pipe.write), standardError: .descriptor(pipe.write),
                                         ownProcessGroup: true).rawValue
        } catch {
            close(pipe.read)
            throw DemoFailure("starting \(path) failed: \(error)")
        }
        output = pipe.read
        let descriptor = output
        let done = readerDone
        let thread = Thread {
            Self.readLines(from: descriptor, onLine: onLine)
            done.signal()
        }
        thread.start()
    }

    /// Reads `descriptor` to its end, one callback per complete line (and the last partial one).
    private static func readLines(from descriptor: Int32, onLine: (String) -> Void) {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            guard let count = try? Descriptor.read(descriptor, into: &chunk, subject: "the agent's output"), count > 0 else { break }
            buffer.append(contentsOf: chunk[0..<count])
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                onLine(String(decoding: buffer[..<newline], as: UTF8.self))
                buffer.removeSubrange(...newline)
            }
        }
        if !buffer.isEmpty { onLine(String(decoding: buffer, as: UTF8.self)) }
    }

    /// The raw wait status once it has ended (reaping it if it just did), else nil.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if !ended {
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                ended = true
                status = raw
            }
        }
        return ended ? status : nil
    }

    /// Sends SIGTERM and waits up to `timeout` seconds for it to end; nil if it did not. The log
    /// reader is given a moment to print the last lines.
    func terminate(timeout: Double) -> Int32? {
        if exitStatus == nil { Glibc.kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(timeout)
        while exitStatus == nil, Date() < deadline { usleep(20_000) }
        guard let status = exitStatus else { return nil }
        _ = readerDone.wait(timeout: .now() + 1)
        return status
    }

    /// Kills and reaps it if it still runs (the clean-up path).
    func kill() {
        guard exitStatus == nil else { return }
        Glibc.kill(pid, SIGKILL)
        lock.lock()
        var raw: Int32 = 0
        _ = try? SystemCall.run("waitpid", "the agent") { waitpid(pid, &raw, 0) }
        ended = true
        status = raw
        lock.unlock()
        _ = readerDone.wait(timeout: .now() + 1)
    }

    deinit {
        kill()
        close(output)
    }

    /// "exited with status 0", "was killed by signal 9 (Killed)".
    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal != 0 { return "was killed by signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "exited with status \((status >> 8) & 0xff)"
    }
}
