import CPtrace
import Glibc

/// Why a process could not be stopped, or stopped the way a patch needs it.
enum StopFailure: Error, Equatable {
    /// Another tracer (a debugger, strace, another agent) holds the thread.
    case tracedBy(pid: Int32)
    /// The process exited or was killed while we worked on it.
    case processGone
    /// Not every thread stopped before the deadline.
    case deadlineExceeded(stopped: Int, total: Int)
    /// The process is stopped by a signal (SIGSTOP, SIGTSTP); it is left as it is.
    case groupStopped
    /// A ptrace request failed in a way that is not one of the above.
    case system(EngineError)
}

/// Threads of one process held with ptrace. Every seized thread is detached on every path (see
/// `release`), re-delivering any signal that arrived while it was held, so a failure never leaves a
/// thread stopped. All calls must come from the OS thread that created it.
final class TracedProcess {
    /// One held thread.
    struct Thread {
        var stopped = false
        /// A signal that arrived while we held the thread; delivered again on detach.
        var pendingSignal: Int32 = 0
    }

    /// The process (thread group) id.
    let pid: Int32
    /// Every thread we seized, by thread id.
    private(set) var threads: [Int32: Thread] = [:]
    /// When the first thread was asked to stop.
    private(set) var firstStop: Monotonic.Instant?
    /// How many threads were moved out of a patch window by single-stepping.
    private(set) var evacuations = 0

    private init(pid: Int32) { self.pid = pid }

    /// Seizes and stops one thread (the leader if it can), for injecting system calls while the
    /// others keep running.
    static func stopOneThread(pid: Int32, deadline: Monotonic.Instant) throws(StopFailure) -> TracedProcess {
        let traced = TracedProcess(pid: pid)
        do throws(StopFailure) {
            try traced.seizeAndInterrupt(pid, traceClones: false)
            try traced.waitUntilAllStopped(deadline: deadline)
            return traced
        } catch {
            traced.release()
            throw error
        }
    }

    /// Seizes and stops every thread, including those created meanwhile, in one wait loop.
    static func stopAllThreads(pid: Int32, deadline: Monotonic.Instant) throws(StopFailure) -> TracedProcess {
        let traced = TracedProcess(pid: pid)
        do throws(StopFailure) {
            // Re-list until no new thread appears; TRACECLONE catches those born in between.
            var seen = Set<Int32>()
            while true {
                let listed = try traced.listThreads()
                let fresh = listed.filter { !seen.contains($0) }
                if fresh.isEmpty { break }
                for tid in fresh {
                    seen.insert(tid)
                    if traced.threads[tid] == nil { try traced.seizeAndInterrupt(tid, traceClones: true) }
                }
            }
            if traced.threads.isEmpty { throw StopFailure.processGone }
            try traced.waitUntilAllStopped(deadline: deadline)
            return traced
        } catch {
            traced.release()
            throw error
        }
    }

    private func listThreads() throws(StopFailure) -> [Int32] {
        do {
            return try Files.list("/proc/\(pid)/task").compactMap { Int32($0) }.sorted()
        } catch {
            throw .processGone
        }
    }

    private func seizeAndInterrupt(_ tid: Int32, traceClones: Bool) throws(StopFailure) {
        if firstStop == nil { firstStop = Monotonic.now }
        let options = traceClones ? UInt(CPTRACE_O_TRACECLONE) : 0
        if cptrace_seize(tid, options) == -1 {
            let number = errno
            if number == ESRCH { return }  // the thread exited between listing and seizing
            if number == EPERM {
                if let tracer = TracedProcess.tracer(of: tid), tracer != 0 {
                    // A clone born during the stop is attached to us by TRACECLONE before we seize
                    // it: it is ours, and it will report its first stop.
                    if TracedProcess.isOurThread(tracer) {
                        threads[tid] = Thread()
                        return
                    }
                    throw .tracedBy(pid: tracer)
                }
                // EPERM without another tracer: the thread is exiting.
                if !TracedProcess.exists(pid) { throw .processGone }
                return
            }
            throw .system(.systemCall(name: "ptrace(PTRACE_SEIZE)", errno: number, subject: "thread \(tid) of process \(pid)"))
        }
        threads[tid] = Thread()
        if cptrace_interrupt(tid) == -1 && errno != ESRCH {
            throw .system(.systemCall(name: "ptrace(PTRACE_INTERRUPT)", errno: errno, subject: "thread \(tid)"))
        }
    }

    /// Collects stops until every held thread is stopped; adopts new clones; forgets dead threads.
    private func waitUntilAllStopped(deadline: Monotonic.Instant) throws(StopFailure) {
        while threads.values.contains(where: { !$0.stopped }) {
            let next: (tid: Int32, event: TraceEvent)?
            do { next = try Ptrace.nextEvent(until: deadline) } catch { throw .system(error as! EngineError) }
            guard let (tid, event) = next else {
                if !TracedProcess.exists(pid) { throw .processGone }
                let stopped = threads.values.filter(\.stopped).count
                throw .deadlineExceeded(stopped: stopped, total: threads.count)
            }
            try record(tid: tid, event: event)
        }
        if threads.isEmpty { throw .processGone }
    }

    /// Applies one wait event to our view of the threads.
    private func record(tid: Int32, event: TraceEvent) throws(StopFailure) {
        switch event {
        case .exited, .killed:
            threads[tid] = nil
            if tid == pid { throw .processGone }
        case let .stopped(signal, eventNumber):
            if threads[tid] == nil {
                // A clone we had not listed yet: auto-attached by TRACECLONE, it starts stopped.
                threads[tid] = Thread()
            }
            threads[tid]!.stopped = true
            if eventNumber == Int32(CPTRACE_EVENT_CLONE) {
                var message: UInt = 0
                if cptrace_geteventmsg(tid, &message) == 0, message != 0, threads[Int32(message)] == nil {
                    threads[Int32(message)] = Thread()
                }
            } else if eventNumber == Int32(CPTRACE_EVENT_STOP) {
                if signal == SIGSTOP || signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU {
                    throw .groupStopped
                }
            } else if eventNumber == 0 && signal != SIGTRAP {
                threads[tid]!.pendingSignal = signal
            } else if eventNumber == 0 && signal == SIGTRAP {
                // A real SIGTRAP (e.g. an int3 in the program) must still reach it.
                threads[tid]!.pendingSignal = SIGTRAP
            }
        }
    }

    /// Executes one instruction on `tid` and waits for it to stop again; other threads stay stopped.
    /// Returns false if the thread died.
    func singleStep(_ tid: Int32, deadline: Monotonic.Instant) throws(StopFailure) -> Bool {
        guard threads[tid]?.stopped == true else { return false }
        if cptrace_singlestep(tid, 0) == -1 {
            if errno == ESRCH { threads[tid] = nil; return false }
            throw .system(.systemCall(name: "ptrace(PTRACE_SINGLESTEP)", errno: errno, subject: "thread \(tid)"))
        }
        threads[tid]!.stopped = false
        while true {
            let next: (tid: Int32, event: TraceEvent)?
            do { next = try Ptrace.nextEvent(until: deadline) } catch { throw .system(error as! EngineError) }
            guard let (eventTid, event) = next else {
                if !TracedProcess.exists(pid) { throw .processGone }
                throw .deadlineExceeded(stopped: threads.values.filter(\.stopped).count, total: threads.count)
            }
            if eventTid == tid, case let .stopped(signal, eventNumber) = event {
                threads[tid]!.stopped = true
                // The trap of the step itself is ours; any other signal is the program's.
                if eventNumber == 0 && signal != SIGTRAP { threads[tid]!.pendingSignal = signal }
                return try disarmSingleStep(tid, deadline: deadline)
            }
            try record(tid: eventTid, event: event)
            if eventTid == tid { return threads[tid] != nil && threads[tid]!.stopped }
        }
    }

    /// Leaves a thread stopped after a single-step without its single-step state. A stepped thread
    /// keeps the trap flag (and the trap on system call exit) until its tracer resumes it; if the
    /// tracer dies instead (the agent killed), the kernel lets the thread run with them and its next
    /// instruction or system call raises a SIGTRAP that kills the process. A PTRACE_INTERRUPT queued
    /// before PTRACE_CONT makes the thread stop again before it returns to user space (no
    /// instruction runs), and the resume clears the single-step state. Returns false if it died.
    private func disarmSingleStep(_ tid: Int32, deadline: Monotonic.Instant) throws(StopFailure) -> Bool {
        if cptrace_interrupt(tid) == -1 || cptrace_cont(tid, 0) == -1 {
            if errno == ESRCH { threads[tid] = nil; return false }
            throw .system(.systemCall(name: "ptrace(PTRACE_CONT)", errno: errno, subject: "thread \(tid)"))
        }
        threads[tid]!.stopped = false
        while true {
            let next: (tid: Int32, event: TraceEvent)?
            do { next = try Ptrace.nextEvent(until: deadline) } catch { throw .system(error as! EngineError) }
            guard let (eventTid, event) = next else {
                if !TracedProcess.exists(pid) { throw .processGone }
                throw .deadlineExceeded(stopped: threads.values.filter(\.stopped).count, total: threads.count)
            }
            guard eventTid == tid, case let .stopped(signal, eventNumber) = event else {
                try record(tid: eventTid, event: event)
                if eventTid == tid { return false }
                continue
            }
            if eventNumber == Int32(CPTRACE_EVENT_STOP) {
                threads[tid]!.stopped = true
                return true
            }
            // A signal that arrived meanwhile: keep it for the detach, and go on to the stop.
            if eventNumber == 0 && signal != SIGTRAP { threads[tid]!.pendingSignal = signal }
            if cptrace_cont(tid, 0) == -1 {
                if errno == ESRCH { threads[tid] = nil; return false }
                throw .system(.systemCall(name: "ptrace(PTRACE_CONT)", errno: errno, subject: "thread \(tid)"))
            }
        }
    }

    /// Notes that a thread was single-stepped out of a patch window.
    func countEvacuation() { evacuations += 1 }

    /// The stopped threads' ids.
    var stoppedThreadIDs: [Int32] { threads.filter { $0.value.stopped }.map(\.key).sorted() }

    /// Detaches every thread, re-delivering pending signals. Threads that had not stopped yet are
    /// waited for briefly so they can be detached too; returns when nothing of ours holds the process.
    func release() {
        let grace = Monotonic.now.adding(microseconds: 2_000_000)
        // A thread seized but running (not stopped yet, or resumed by a single-step that blocked in
        // a system call) can only be detached once stopped: ask it to stop again.
        for (tid, thread) in threads where !thread.stopped {
            _ = cptrace_interrupt(tid)
        }
        while !threads.isEmpty {
            for (tid, thread) in threads where thread.stopped {
                if cptrace_detach(tid, thread.pendingSignal) == 0 || errno == ESRCH {
                    threads[tid] = nil
                }
            }
            if threads.isEmpty { break }
            // Seized but not yet stopped: wait for its stop (or death), then detach it.
            guard let (tid, event) = (try? Ptrace.nextEvent(until: grace)) ?? nil else {
                // A thread that does not stop within the grace period (uninterruptible sleep) is
                // detached by the kernel when it next stops and finds us gone; nothing else to do.
                threads.removeAll()
                break
            }
            switch event {
            case .exited, .killed: threads[tid] = nil
            case let .stopped(signal, eventNumber):
                if threads[tid] == nil { threads[tid] = Thread() }
                threads[tid]!.stopped = true
                if eventNumber == 0 && signal != SIGTRAP { threads[tid]!.pendingSignal = signal }
            }
        }
        // Reap exit notifications of threads that died while we held them.
        while let _ = (try? Ptrace.pollEvent()) ?? nil {}
    }

    /// The TracerPid of a thread, if readable.
    static func tracer(of tid: Int32) -> Int32? {
        try? ProcFS.status(of: ProcessID(tid)).tracerPID
    }

    /// Whether `tid` is a thread of the calling process. /proc/PID/status names a tracer by its
    /// thread id, not its process id.
    static func isOurThread(_ tid: Int32) -> Bool {
        var info = stat()
        return stat("/proc/self/task/\(tid)", &info) == 0
    }

    /// Whether the process still exists (and is not a zombie).
    static func exists(_ pid: Int32) -> Bool {
        guard let status = try? ProcFS.status(of: ProcessID(pid)) else { return false }
        return status.state != "Z" && status.state != "X"
    }
}
