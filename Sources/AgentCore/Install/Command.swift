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
    ///
    /// posix_spawn, poll and waitpid on the calling thread, nothing else: Foundation's `Process`
    /// learns of the child's exit through a dispatch source, and when every thread of Swift's
    /// cooperative pool (two on a 2-CPU VM) is blocked, that notice never comes (seen as an agent
    /// that never stopped after `systemctl reboot`).
    /// With `timeoutSeconds`, a command still running then is killed (SIGKILL) and reported with
    /// status 128+9; without, the wait is unbounded (dpkg must never be killed half-way).
    static func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:],
                    timeoutSeconds: Double? = nil) throws(AgentCoreError) -> Outcome
    {
        let commandLine = ([executable] + arguments).joined(separator: " ")
        var environment = ProcessInfo.processInfo.environment
        // dpkg refuses to run without the sbin directories (ldconfig, start-stop-daemon) on PATH.
        environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        environment["LC_ALL"] = "C.UTF-8"
        environment.merge(extra) { _, new in new }

        var outputPipe: [Int32] = [-1, -1], errorPipe: [Int32] = [-1, -1]
        guard pipe(&outputPipe) == 0 else { throw .commandFailed(command: commandLine, status: -1, output: "pipe: errno \(errno)") }
        guard pipe(&errorPipe) == 0 else {
            close(outputPipe[0]); close(outputPipe[1])
            throw .commandFailed(command: commandLine, status: -1, output: "pipe: errno \(errno)")
        }
        // Not inherited by other children the agent starts meanwhile (the dup2 copies in this child are).
        for descriptor in outputPipe + errorPipe { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errorPipe[1], 2)
        // The agent blocks the signals it handles; dpkg and its maintainer scripts must not inherit that.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        close(outputPipe[1])
        close(errorPipe[1])
        guard spawned == 0 else {
            close(outputPipe[0]); close(errorPipe[0])
            throw .commandFailed(command: commandLine, status: -1, output: "cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        // Both pipes are drained together: a child blocked on a full stderr pipe would never finish stdout.
        let deadline = timeoutSeconds.map { Date().addingTimeInterval($0) }
        let (outputBytes, errorBytes) = drain(outputPipe[0], errorPipe[0], until: deadline) { kill(child, SIGKILL) }
        var waitStatus: Int32 = 0
        while waitpid(child, &waitStatus, 0) == -1 && errno == EINTR {}
        let signal = waitStatus & 0x7f
        let status = signal == 0 ? (waitStatus >> 8) & 0xff : 128 + signal
        return Outcome(status: status, output: String(decoding: outputBytes, as: UTF8.self),
                       errorOutput: String(decoding: errorBytes, as: UTF8.self))
    }

    /// Reads both descriptors to their end, then closes them; at `deadline`, calls `expire` once
    /// (which kills the writer, so the ends come).
    private static func drain(_ first: Int32, _ second: Int32, until deadline: Date?, expire: () -> Void) -> ([UInt8], [UInt8]) {
        var expired = false
        var buffers: [[UInt8]] = [[], []]
        var open = [first, second]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while open.contains(where: { $0 >= 0 }) {
            var polled = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            var timeout: Int32 = -1
            if let deadline, !expired {
                let remaining = deadline.timeIntervalSinceNow
                if remaining <= 0 {
                    expire()
                    expired = true
                } else {
                    timeout = Int32(min(remaining * 1000 + 1, 60_000))
                }
            }
            let ready = poll(&polled, nfds_t(polled.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<2 where open[index] >= 0 && polled[index].revents != 0 {
                let count = read(open[index], &chunk, chunk.count)
                if count > 0 {
                    buffers[index].append(contentsOf: chunk[0..<count])
                } else if count == 0 || errno != EINTR {
                    close(open[index])
                    open[index] = -1
                }
            }
        }
        for descriptor in open where descriptor >= 0 { close(descriptor) }
        return (buffers[0], buffers[1])
    }
}
