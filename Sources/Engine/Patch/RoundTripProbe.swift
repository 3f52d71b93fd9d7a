import CPtrace
import Glibc
import LinuxSystem

/// Measures the unit a load is built of: one ptrace round trip, a held thread resumed to its next
/// system call stop (PTRACE_SYSCALL) and waited for as the agent waits (a per-thread deadline
/// timer and a blocking waitpid, `TracedProcess.runToSystemCallStop`). A first apply takes four:
/// the stop of every thread, the reservation's entry and exit, the program's end.
///
/// Where the two threads run decides what a round trip costs: when the tracer blocks, its CPU
/// may go idle, and the tracee's CPU idles while it is stopped, so each round trip can wake two
/// CPUs; on the same CPU it is two context switches. `hotpatch-bench` prints both.
public enum RoundTripProbe {
    /// Where the tracer and its tracee run during a probe.
    public enum Placement: String, Codable, Sendable {
        /// Wherever the scheduler puts them, as when the agent patches.
        case free
        /// Both pinned to the CPU the tracer is on (the tracee's CPU set is changed for good:
        /// only for a process of the caller's own).
        case oneCPU
    }

    /// `samples` round trips of the main thread of `pid`, a single-threaded process of the
    /// caller's own that makes system calls without end, in microseconds each. The thread is held
    /// for the whole probe, and let go after it. Call from one thread, as every ptrace use.
    public static func measure(pid: ProcessID, samples: Int, placement: Placement) throws(EngineError) -> [UInt64] {
        let tid = pid.mainThread
        let traced: TracedProcess
        do { traced = try TracedProcess.stopOneThread(tid, of: pid, deadline: Monotonic.now.adding(microseconds: 2_000_000)) } catch {
            throw failure(error, pid: pid)
        }
        defer { traced.release() }
        if placement == .oneCPU {
            guard cptrace_pin_with(pid.rawValue) >= 0 else {
                throw .systemCall(name: "sched_setaffinity", errno: errno, subject: "the tracer and process \(pid)")
            }
        }
        defer { if placement == .oneCPU { _ = cptrace_unpin() } }
        var times: [UInt64] = []
        times.reserveCapacity(samples)
        for _ in 0..<samples {
            let start = Monotonic.now
            let stopped: Bool
            do { stopped = try traced.runToSystemCallStop(tid, deadline: start.adding(microseconds: 1_000_000)) } catch {
                throw failure(error, pid: pid)
            }
            guard stopped else { throw failure(.processGone, pid: pid) }
            times.append(Monotonic.now.microseconds(since: start))
        }
        return times
    }

    /// A stop failure as the error this module reports.
    private static func failure(_ stop: StopFailure, pid: ProcessID) -> EngineError {
        let subject = "process \(pid)"
        switch stop {
        case let .system(error): return error
        case let .tracedBy(tracer): return .systemCall(name: "ptrace", errno: EPERM, subject: "\(subject), already traced by thread \(tracer)")
        case .processGone: return .systemCall(name: "ptrace", errno: ESRCH, subject: subject)
        case .deadlineExceeded: return .systemCall(name: "waitpid", errno: ETIMEDOUT, subject: "\(subject), which did not stop within the deadline")
        case .groupStopped: return .systemCall(name: "waitpid", errno: EBUSY, subject: "\(subject), stopped by a signal")
        }
    }
}
