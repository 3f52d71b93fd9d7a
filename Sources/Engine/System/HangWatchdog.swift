import CPtrace
import Glibc
import LinuxSystem

/// A separate, tiny process that kills this one (SIGKILL) when its heartbeat stops for longer
/// than a timeout: the bound on how long a hung or stopped agent can hold what the kernel only
/// releases at its death (openers waiting on its fanotify permission events, threads it traces).
/// Forked without exec; the child closes every descriptor but its end of the heartbeat at once,
/// so it never keeps the agent's fanotify group alive, and it exits when the agent closes its end
/// or dies. PR_SET_PDEATHSIG ties it to the thread that starts it: start it from a thread that
/// lives as long as what it guards.
public final class HangWatchdog: @unchecked Sendable {
    /// The watchdog process.
    public let pid: ProcessID
    private let beatEnd: Int32

    /// Starts the watchdog: this process is killed `timeoutMilliseconds` after the last `beat()`.
    public init(timeoutMilliseconds: Int32) throws(SystemError) {
        let (ours, theirs) = try Socket.unixStreamPair(nonBlocking: true, subject: "the watchdog's heartbeat")
        let child = cptrace_start_watchdog(theirs, getpid(), timeoutMilliseconds)
        let failure = errno
        Descriptor.close(theirs)
        guard child > 0 else {
            Descriptor.close(ours)
            throw SystemError(call: "fork", errno: failure, subject: "the watchdog process")
        }
        pid = ProcessID(child)
        beatEnd = ours
    }

    /// Tells the watchdog this process is alive; never blocks.
    public func beat() {
        var one: UInt8 = 1
        _ = send(beatEnd, &one, 1, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }

    /// Ends the watchdog (it sees its heartbeat closed and exits) and reaps it.
    public func stop() {
        Descriptor.close(beatEnd)
        // A tracer thread's wait for any child may reap it first: then there is nothing to reap.
        for _ in 0..<100 {
            var status: Int32 = 0
            let reaped = waitpid(pid.rawValue, &status, WNOHANG)
            if reaped != 0 { return }
            usleep(1_000)
        }
    }
}
