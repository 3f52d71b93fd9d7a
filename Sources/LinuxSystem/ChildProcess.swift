import Foundation
import Glibc

/// Starts programs with posix_spawn the way a service manager would: every signal at its default
/// action and none blocked. The agent, the demo and test runners block or ignore signals in their
/// threads, and a child (dpkg, systemctl, a fixture, the agent itself) must not inherit that.
public enum ChildProcess {
    /// What one of the child's standard descriptors is connected to.
    public enum Stream: Sendable {
        /// The caller's own descriptor.
        case inherit
        /// /dev/null.
        case null
        /// A descriptor of the caller (typically a pipe's write end), duplicated into the child.
        case descriptor(Int32)
    }

    /// Starts `path` with `arguments` and returns its process id. `environment` nil means the caller's.
    public static func spawn(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                             standardInput: Stream = .inherit, standardOutput: Stream = .inherit,
                             standardError: Stream = .inherit, ownProcessGroup: Bool = false) throws(SystemError) -> ProcessID {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, stream) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            switch stream {
            case .inherit: break
            case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            case let .descriptor(descriptor): posix_spawn_file_actions_adddup2(&actions, descriptor, target)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SystemError(call: "posix_spawn", errno: result, subject: path) }
        return ProcessID(child)
    }

    /// A pipe whose ends are close-on-exec (only the copies `spawn` duplicates reach a child).
    public static func pipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var descriptors: [Int32] = [-1, -1]
        try SystemCall.run("pipe", "child output") { Glibc.pipe(&descriptors) }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (descriptors[0], descriptors[1])
    }

    /// Waits for `pid` to end (retrying EINTR) and returns its exit status, 128 + N when killed by signal N.
    public static func waitForExit(_ pid: ProcessID) -> Int32 {
        var status: Int32 = 0
        _ = try? SystemCall.run("waitpid", "process \(pid)") { waitpid(pid.rawValue, &status, 0) }
        return exitCode(fromWaitStatus: status)
    }

    /// The shell's view of a raw wait status: the exit code, or 128 + the signal that ended it.
    public static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// What a program run to its end returned.
    public struct Finished: Sendable {
        /// Exit code, 128 + N when killed by signal N.
        public var status: Int32
        /// Its standard output.
        public var output: [UInt8]
        /// Its standard error.
        public var errorOutput: [UInt8]
    }

    /// Runs `path` with `arguments` (standard input /dev/null, outputs collected apart) and waits
    /// for it; only a failure to start throws. posix_spawn, poll and waitpid on the calling thread,
    /// nothing else: Foundation's `Process` learns of a child's exit through a dispatch source, and
    /// when every thread of Swift's cooperative pool (two on a 2-CPU VM) is blocked, that notice
    /// never comes (seen as an agent that never stopped after `systemctl reboot`). With
    /// `timeoutSeconds`, a program still running then is killed (SIGKILL, status 128+9).
    public static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                           timeoutSeconds: Double? = nil) throws(SystemError) -> Finished {
        let output = try pipe()
        let errorOutput: (read: Int32, write: Int32)
        do throws(SystemError) { errorOutput = try pipe() } catch {
            close(output.read); close(output.write)
            throw error
        }
        let child: ProcessID
        do throws(SystemError) {
            child = try spawn(path, arguments, environment: environment, standardInput: .null,
                              standardOutput: .descriptor(output.write), standardError: .descriptor(errorOutput.write))
        } catch {
            [output.read, output.write, errorOutput.read, errorOutput.write].forEach { _ = close($0) }
            throw error
        }
        close(output.write)
        close(errorOutput.write)
        // Both pipes are drained together: a child blocked on a full stderr pipe would never finish stdout.
        let deadline = timeoutSeconds.map { Date().addingTimeInterval($0) }
        let (outputBytes, errorBytes) = drain(output.read, errorOutput.read, until: deadline) { kill(child.rawValue, SIGKILL) }
        return Finished(status: waitForExit(child), output: outputBytes, errorOutput: errorBytes)
    }

    /// Reads both descriptors to their end, then closes them; at `deadline`, calls `expire` once
    /// (which kills the writer, so the ends come).
    private static func drain(_ first: Int32, _ second: Int32, until deadline: Date?, expire: () -> Void) -> ([UInt8], [UInt8]) {
        var expired = false
        var buffers: [[UInt8]] = [[], []]
        var open = [first, second]
        var chunk = [UInt8](repeating: 0, count: 65536)
        while open.contains(where: { $0 >= 0 }) {
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
            let revents: [Int16]
            do {
                revents = try Descriptor.poll(open, events: Int16(POLLIN), timeoutMilliseconds: timeout, subject: "child output")
            } catch {
                break
            }
            for index in 0..<2 where open[index] >= 0 && revents[index] != 0 {
                let descriptor = open[index]
                let count = try? SystemCall.run("read", "child output") {
                    chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, $0.count) }
                }
                if let count, count > 0 {
                    buffers[index].append(contentsOf: chunk[0..<count])
                } else {
                    close(open[index])
                    open[index] = -1
                }
            }
        }
        for descriptor in open where descriptor >= 0 { close(descriptor) }
        return (buffers[0], buffers[1])
    }
}
