import Glibc
import LinuxSystem
@testable import Engine

/// A real `/bin/sleep 60` child for integration tests; `stop()` kills and reaps it.
final class SleepingChild {
    let pid: ProcessID
    private let process: RunningProcess

    init() throws {
        process = try RunningProcess("/bin/sleep", ["60"])
        pid = ProcessID(process.pid)
        // posix_spawn returns once exec has replaced the memory, before the ELF loader has mapped
        // everything: wait until sleep itself sleeps in nanosleep (state S).
        for _ in 0..<1000 {
            if let exe = try? ProcFS.executablePath(of: pid), exe.hasSuffix("/sleep"),
               let status = try? ProcFS.status(of: pid), status.state == "S" { return }
            usleep(1000)
        }
    }

    /// Kills the child with SIGKILL and reaps it, so its pid no longer exists in /proc.
    func stop() { process.stop() }
}
