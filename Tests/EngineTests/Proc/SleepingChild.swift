import Glibc
import LinuxSystem
@testable import Engine

/// A real `/bin/sleep 60` child for integration tests; `stop()` kills and reaps it.
final class SleepingChild {
    let pid: ProcessID
    private var reaped = false

    init() throws {
        var raw: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("60"), nil]
        defer { argv.forEach { free($0) } }
        let rc = posix_spawn(&raw, "/bin/sleep", nil, nil, argv, environ)
        guard rc == 0 else { throw EngineError.systemCall(name: "posix_spawn", errno: rc, subject: "/bin/sleep") }
        pid = ProcessID(raw)
        // posix_spawn returns once exec has replaced the memory, before the ELF loader has mapped
        // everything: wait until sleep itself sleeps in nanosleep (state S).
        for _ in 0..<1000 {
            if let exe = try? ProcFS.executablePath(of: pid), exe.hasSuffix("/sleep"),
               let status = try? ProcFS.status(of: pid), status.state == "S" { return }
            usleep(1000)
        }
    }

    /// Kills the child with SIGKILL and reaps it, so its pid no longer exists in /proc.
    func stop() {
        guard !reaped else { return }
        reaped = true
        kill(pid.rawValue, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid.rawValue, &status, 0) == -1 && errno == EINTR {}
    }

    deinit { stop() }
}
