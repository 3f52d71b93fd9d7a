import Architecture
import Glibc
import LinuxSystem

/// Why a process could not be stopped, or stopped the way a patch needs it.
enum StopFailure: Error, Equatable {
    /// Another tracer (a debugger, strace, another agent) holds the thread; /proc names it by the
    /// id of its tracing thread.
    case tracedBy(ThreadID)
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
        /// Stopped at a system call's entry or exit (PTRACE_SYSCALL), not inside signal handling.
        var atSystemCall = false
        /// A signal that arrived while we held the thread; delivered again on detach.
        var pendingSignal: Int32 = 0
        /// Its registers as read in this stop (`registers(of:)`); forgotten when it runs.
        var registers: ThreadRegisters?
        /// Its registers were put back by whoever changed them (an injection), final for the
        /// release; forgotten when it runs.
        var settled = false
    }

    /// The stop signal of a system call stop: SIGTRAP|0x80 with PTRACE_O_TRACESYSGOOD.
    static let systemCallStopSignal = SIGTRAP | 0x80

    /// Whether a stop reports a signal of the program (to deliver on detach): not an event, not our
    /// own traps (a step's SIGTRAP, a system call stop).
    static func isProgramSignal(_ signal: Int32, event: Int32) -> Bool {
        event == 0 && signal != SIGTRAP && signal != systemCallStopSignal
    }

    /// The process (thread group) id.
    let pid: ProcessID
    /// The thread whose exit ends the hold: the leader, or the one thread `stopOneThread` holds
    /// (renamed with it when an exec gives it the leader's id).
    private var anchor: ThreadID
    /// Every thread we seized, by thread id.
    private(set) var threads: [ThreadID: Thread] = [:]
    /// When the first thread was asked to stop.
    private(set) var firstStop: Monotonic.Instant?
    /// When `stopAllThreads` had seized and asked every thread to stop (the list read again and
    /// found complete), and when every one had stopped: where the stop's own time goes.
    private(set) var allSeized: Monotonic.Instant?
    private(set) var allStopped: Monotonic.Instant?
    /// How many threads were moved out of a patch window by single-stepping.
    private(set) var evacuations = 0
    /// Threads that vanished under a ptrace request (ESRCH) while held: dying, and ours to reap.
    /// Until their tracer reaps them the kernel keeps them as zombies, and the process's own
    /// parent cannot reap the process (a killed service would hang in "deactivating").
    private var dying = Set<ThreadID>()
    /// Read each thread's registers as it stops (`stopAllThreads(readingRegisters:)`).
    private var readsRegistersAtStop = false
    /// The process's /proc directory, when the caller holds it: the threads are listed through it,
    /// its task folder opened once for all the listings of the hold.
    private let directory: ProcessDirectory?
    private var threadListing: ThreadListing?
    /// Thread ids the next listing gets besides the process's own (see `stopAllThreads`).
    private var alsoListed: [ThreadID] = []

    private init(pid: ProcessID, anchor: ThreadID, directory: ProcessDirectory? = nil) {
        self.pid = pid
        self.anchor = anchor
        self.directory = directory
    }

    /// Seizes and stops the one thread `tid` of `pid`, leaving the others running. The loader never
    /// does this (a running thread could add a seccomp filter under the held one); the tracer-death
    /// tests use it to hold exactly one thread.
    static func stopOneThread(_ tid: ThreadID, of pid: ProcessID, deadline: Monotonic.Instant) throws(StopFailure) -> TracedProcess {
        let traced = TracedProcess(pid: pid, anchor: tid)
        do throws(StopFailure) {
            try traced.seizeAndInterrupt(tid, traceClones: false)
            try traced.waitUntilAllStopped(deadline: deadline)
            return traced
        } catch {
            traced.release()
            throw error
        }
    }

    /// Seizes and stops every thread, including those created meanwhile, in one wait loop. With
    /// `readingRegisters`, each thread's registers are read (`registers(of:)`) as soon as it stops,
    /// while the others are still on their way: the stop window needs them all, and only the last
    /// thread's read is then left after the last stop. Not for a hold whose registers an injection
    /// changes.
    ///
    /// With the process's `directory` (opened when it was identified), the threads are listed
    /// through it, and the listing that follows the seizes, which every hold makes to find threads
    /// born meanwhile, fails once that process is gone: a pid reused by another process between
    /// the identification and the seize stops that other process for a moment, then lets it go
    /// untouched, the patch refused as gone.
    ///
    /// `alsoListed` joins the first listing: thread ids that are not the process's (tests stand in
    /// with them for an id that a thread's exit freed and another process took before its seize).
    static func stopAllThreads(pid: ProcessID, deadline: Monotonic.Instant, readingRegisters: Bool = false,
                               directory: ProcessDirectory? = nil, alsoListed: [ThreadID] = []) throws(StopFailure) -> TracedProcess {
        let traced = TracedProcess(pid: pid, anchor: pid.mainThread, directory: directory)
        traced.readsRegistersAtStop = readingRegisters
        traced.alsoListed = alsoListed
        do throws(StopFailure) {
            try traced.holdRemainingThreads(deadline: deadline)
            return traced
        } catch {
            traced.release()
            throw error
        }
    }

    /// Seizes and stops every thread of the process not held yet, including those created
    /// meanwhile, in one wait loop: the whole of `stopAllThreads`, and how a hold taken over from
    /// the exec gate (one thread held) comes to hold the others too. On failure the caller releases.
    func holdRemainingThreads(deadline: Monotonic.Instant) throws(StopFailure) {
        // Re-list until no new thread appears; TRACECLONE catches those born in between.
        var seen = Set<ThreadID>()
        var listed: [ThreadID] = []
        // A process that had one thread when its start time was read (most idle ones do) is seized
        // by its leader first: the listing after that seize then decides alone, where listing
        // before it too would read the same one thread twice. Any thread born since is in that
        // listing (or attached by TRACECLONE), and the loop goes on as for any other process.
        if threads.isEmpty, alsoListed.isEmpty, let directory, directory.threadsWhenIdentified == 1 {
            // Opened now, so that the pause holds a listing but not an open.
            _ = try openedThreadListing(directory)
            do { try seizeAndInterrupt(anchor, traceClones: true) } catch {
                // Refused for a tracer of a process that took the pid since: not this one's.
                if !directory.exists { throw .processGone }
                throw error
            }
            seen.insert(anchor)
        }
        while true {
            listed = try listThreads()
            if !alsoListed.isEmpty {
                listed += alsoListed
                alsoListed = []
            }
            let fresh = listed.filter { !seen.contains($0) }
            if fresh.isEmpty { break }
            for tid in fresh {
                seen.insert(tid)
                if threads[tid] == nil { try seizeAndInterrupt(tid, traceClones: true) }
            }
        }
        // The last listing came after every seize. A thread we seized stays listed until we reap
        // it, even once it exits; one seized from a listing and missing from the last is not this
        // process's: it exited between its listing and its seize, and its id went to a thread of
        // another process. That thread is let go as soon as it stops, nothing read or written.
        // The last listing is one of `seen`'s (nothing fresh in it): only more ids seen than listed
        // leave strangers, and the usual hold builds no set inside its pause.
        var strangers: [ThreadID] = []
        if seen.count > listed.count {
            let members = Set(listed)
            strangers = seen.filter { !members.contains($0) && threads[$0] != nil && $0 != anchor }
        }
        if threads.isEmpty { throw StopFailure.processGone }
        allSeized = Monotonic.now
        try waitUntilAllStopped(deadline: deadline)
        for tid in strangers { detach(tid) }
        if threads.isEmpty { throw StopFailure.processGone }
        allStopped = Monotonic.now
    }

    /// Seizes thread `tid` of `pid` and asks it to stop, tracing its execve (the exec gate's hold:
    /// the thread is blocked in the kernel on the gate's permission event, which the interrupt
    /// does not end; it stops when it goes on, at its exec's end or on its way back to user space).
    /// `awaitStop` waits for that stop.
    static func seizeWaiting(_ tid: ThreadID, of pid: ProcessID) throws(StopFailure) -> TracedProcess {
        let traced = TracedProcess(pid: pid, anchor: tid)
        traced.firstStop = Monotonic.now
        do { try Ptrace.seize(tid, options: [.markSystemCallStops, .traceExec]) } catch {
            if error.errno == ESRCH { throw .processGone }
            if error.errno == EPERM {
                if let tracer = traced.tracer(of: tid) { throw .tracedBy(tracer) }
                throw .processGone
            }
            throw .system(.system(SystemError(call: error.call, errno: error.errno, subject: "thread \(tid) of process \(pid)")))
        }
        traced.threads[tid] = Thread()
        // Asked to stop at once: it stops on its way back to user space, whenever the permission
        // event is answered, and never runs a single instruction of its own before that.
        do { try Ptrace.interrupt(tid) } catch {
            traced.release()
            throw error.errno == ESRCH ? .processGone : .system(.system(error))
        }
        return traced
    }

    private func listThreads() throws(StopFailure) -> [ThreadID] {
        do {
            if let directory { return try openedThreadListing(directory).threadIDs() }
            return try ProcFS.threadIDs(of: pid)
        } catch {
            throw .processGone
        }
    }

    /// The task folder of the hold's `directory`, opened at the first call and kept for the hold.
    private func openedThreadListing(_ directory: ProcessDirectory) throws(StopFailure) -> ThreadListing {
        if let threadListing { return threadListing }
        do { threadListing = try directory.threadListing() } catch { throw .processGone }
        return threadListing!
    }

    private func seizeAndInterrupt(_ tid: ThreadID, traceClones: Bool) throws(StopFailure) {
        if firstStop == nil { firstStop = Monotonic.now }
        // TRACESYSGOOD tells system call stops (SIGTRAP|0x80) from a real SIGTRAP, and a system
        // call stop whose tracer dies is resumed without any signal.
        do {
            try Ptrace.seize(tid, options: traceClones ? [.markSystemCallStops, .traceClones] : .markSystemCallStops)
        } catch {
            if error.errno == ESRCH { return }  // the thread exited between listing and seizing
            if error.errno == EPERM {
                if let tracer = tracer(of: tid) {
                    // A clone born during the stop is attached to us by TRACECLONE before we seize
                    // it: it is ours, and it will report its first stop.
                    if TracedProcess.isOurThread(tracer) {
                        threads[tid] = Thread()
                        return
                    }
                    throw .tracedBy(tracer)
                }
                // EPERM without another tracer: the thread is exiting.
                if !exists { throw .processGone }
                return
            }
            throw .system(.system(SystemError(call: error.call, errno: error.errno, subject: "thread \(tid) of process \(pid)")))
        }
        threads[tid] = Thread()
        do { try Ptrace.interrupt(tid) } catch where error.errno != ESRCH {
            throw .system(.system(error))
        } catch {}
    }

    /// The next event of any held thread; fails when the process is gone or `deadline` passes first.
    private func nextEvent(until deadline: Monotonic.Instant, expectingNone: Bool = false) throws(StopFailure) -> (tid: ThreadID, event: TraceEvent) {
        while true {
            let next: (tid: ThreadID, event: TraceEvent)?
            do { next = try Ptrace.nextEvent(until: deadline, expectingNone: expectingNone) } catch { throw .system(.system(error)) }
            guard let next else {
                if !exists { throw .processGone }
                throw .deadlineExceeded(stopped: threads.values.filter(\.stopped).count, total: threads.count)
            }
            // A thread an earlier hold on this tracer thread could not let go: let go now, never
            // taken for a thread of this process.
            if threads[next.tid] == nil, Stragglers.contains(next.tid) {
                Stragglers.letGo(next.tid, after: next.event)
                continue
            }
            return next
        }
    }

    /// Resumes `tid` with the ptrace requests `request` makes; false when the thread is gone.
    private func resume(_ tid: ThreadID, _ request: (ThreadID) throws(SystemError) -> Void) throws(StopFailure) -> Bool {
        do { try request(tid) } catch {
            if error.errno == ESRCH { lose(tid); return false }
            throw .system(.system(error))
        }
        threads[tid]!.stopped = false
        threads[tid]!.atSystemCall = false
        threads[tid]!.registers = nil
        threads[tid]!.settled = false
        return true
    }

    /// Notes that `tid`'s registers were put back as they must run on (an injection's restore,
    /// which already re-runs a call the stop failed): the release leaves them alone, and the stop
    /// window looks at `registers`, just set, without reading them again.
    func settle(_ tid: ThreadID, registers: ThreadRegisters) {
        guard threads[tid]?.stopped == true else { return }
        threads[tid]!.settled = true
        threads[tid]!.registers = registers
    }

    /// The registers of `tid`, stopped, read once per stop: the stop window looks at each thread
    /// several times (who is in a patch window, the strict check, the release) and each read is a
    /// system call while every thread waits. nil when the thread is gone or not stopped. Only for
    /// threads whose registers nothing else changes during this stop (not an injection thread).
    func registers(of tid: ThreadID) -> ThreadRegisters? {
        guard threads[tid]?.stopped == true else { return nil }
        if let known = threads[tid]!.registers { return known }
        let read = try? Ptrace.registers(tid)
        threads[tid]!.registers = read
        return read
    }

    /// Collects stops until every held thread is stopped; adopts new clones; forgets dead threads.
    private func waitUntilAllStopped(deadline: Monotonic.Instant) throws(StopFailure) {
        while threads.values.contains(where: { !$0.stopped }) {
            let (tid, event) = try nextEvent(until: deadline)
            try record(tid: tid, event: event)
            if readsRegistersAtStop { _ = registers(of: tid) }
        }
        if threads.isEmpty { throw .processGone }
    }

    /// Applies one wait event to our view of the threads.
    private func record(tid: ThreadID, event: TraceEvent) throws(StopFailure) {
        switch event {
        case .exited, .killed:
            forgetExited(tid)
            if tid == anchor { throw .processGone }
        case let .stopped(signal, eventNumber):
            dying.remove(tid)
            if threads[tid] == nil, eventNumber == Ptrace.execEvent, let former = formerThread(ofExecIn: tid) {
                // An exec in a thread other than the leader: the kernel gave that thread the
                // process's id on the way (the old leader is gone), and it stops under that id.
                threads[tid] = threads.removeValue(forKey: former)
                if anchor == former { anchor = tid }
            }
            if threads[tid] == nil {
                // A clone we had not listed yet: auto-attached by TRACECLONE, it starts stopped.
                threads[tid] = Thread()
            }
            threads[tid]!.stopped = true
            threads[tid]!.atSystemCall = false
            if eventNumber == Ptrace.cloneEvent {
                if let message = try? Ptrace.eventMessage(tid), message != 0, let born = Int32(exactly: message),
                   threads[ThreadID(born)] == nil {
                    threads[ThreadID(born)] = Thread()
                }
            } else if eventNumber == Ptrace.interruptEvent {
                if signal == SIGSTOP || signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU {
                    throw .groupStopped
                }
            } else if eventNumber == 0 && signal == TracedProcess.systemCallStopSignal {
                threads[tid]!.atSystemCall = true
            } else if eventNumber == 0 && signal != SIGTRAP {
                threads[tid]!.pendingSignal = signal
            } else if eventNumber == 0 && signal == SIGTRAP {
                // A real SIGTRAP (e.g. an int3 in the program) must still reach it.
                threads[tid]!.pendingSignal = SIGTRAP
            }
        }
    }

    /// The thread of ours that `tid`, stopped at an exec, was before it: the id the exec's event
    /// message names, if that thread is ours and not `tid` itself.
    private func formerThread(ofExecIn tid: ThreadID) -> ThreadID? {
        guard let message = try? Ptrace.eventMessage(tid), let former = Int32(exactly: message).map(ThreadID.init),
              former != tid, threads[former] != nil else { return nil }
        return former
    }

    /// Executes one instruction on `tid` and waits for it to stop again; other threads stay stopped.
    /// The thread is left in an interrupt stop, its single-step state cleared (see
    /// `interruptStop`). Returns false if the thread died.
    ///
    /// From PTRACE_SINGLESTEP until that interrupt stop the thread is armed: it carries the trap
    /// flag (and the trap on system call exit) while it runs its instruction, then sits in the
    /// SIGTRAP signal-delivery-stop of the step. A tracer that dies in between leaves it to a
    /// SIGTRAP it cannot survive (the kernel neither clears the flag nor drops the stop's signal on
    /// the tracer's death). This is kept to one instruction and two ptrace requests per step.
    func singleStep(_ tid: ThreadID, deadline: Monotonic.Instant) throws(StopFailure) -> Bool {
        guard threads[tid]?.stopped == true else { return false }
        guard try resume(tid, Ptrace.singleStep) else { return false }
        while true {
            let (eventTid, event) = try nextEvent(until: deadline)
            if eventTid == tid, case let .stopped(signal, eventNumber) = event {
                threads[tid]!.stopped = true
                // The trap of the step itself is ours; any other signal is the program's.
                if TracedProcess.isProgramSignal(signal, event: eventNumber) { threads[tid]!.pendingSignal = signal }
                return try interruptStop(tid, deadline: deadline)
            }
            try record(tid: eventTid, event: event)
            if eventTid == tid { return threads[tid] != nil && threads[tid]!.stopped }
        }
    }

    /// Resumes `tid`, stopped in any ptrace-stop, straight into an interrupt stop, without running
    /// an instruction: a PTRACE_INTERRUPT queued before PTRACE_CONT traps the thread in its signal
    /// handling on its way back to user space. The resume clears what PTRACE_SINGLESTEP and
    /// PTRACE_SYSCALL armed (kernel: `user_disable_single_step`, `SYSCALL_TRACE` cleared), and
    /// the thread ends where the kernel applies its system call restart rules, so registers set
    /// there resume exactly as if the thread had been interrupted there. A signal that arrives
    /// meanwhile is kept for the detach. Returns false if the thread died.
    func interruptStop(_ tid: ThreadID, deadline: Monotonic.Instant) throws(StopFailure) -> Bool {
        guard threads[tid]?.stopped == true else { return false }
        let interruptThenResume = { (tid: ThreadID) throws(SystemError) in
            try Ptrace.interrupt(tid)
            try Ptrace.resume(tid)
        }
        guard try resume(tid, interruptThenResume) else { return false }
        while true {
            let (eventTid, event) = try nextEvent(until: deadline)
            guard eventTid == tid, case let .stopped(signal, eventNumber) = event else {
                try record(tid: eventTid, event: event)
                if eventTid == tid { return false }
                continue
            }
            if eventNumber == Ptrace.interruptEvent {
                threads[tid]!.stopped = true
                return true
            }
            // A signal that arrived meanwhile: keep it for the detach, and go on to the stop.
            if TracedProcess.isProgramSignal(signal, event: eventNumber) { threads[tid]!.pendingSignal = signal }
            guard try resume(tid, { (tid: ThreadID) throws(SystemError) in try Ptrace.resume(tid) }) else { return false }
        }
    }

    /// Resumes `tid` until its next system call stop (entry or exit) with PTRACE_SYSCALL. A signal
    /// that stops it first is suppressed and kept for the detach (it is delivered then), and the
    /// thread is resumed again; a group stop (SIGSTOP) ends the wait with `.groupStopped`. Unlike a
    /// single-step, this arms nothing that survives the tracer: on its death the kernel clears
    /// system call tracing and a thread in a system call stop carries on without a signal. Returns
    /// false if the thread died.
    ///
    /// With `deliveringSignals` (a process held at its start, whose own code may run while it is
    /// stepped) a signal is delivered as it comes instead, as if the process were not traced: its
    /// handler runs, it dies, or it stops (then `.groupStopped`).
    func runToSystemCallStop(_ tid: ThreadID, deadline: Monotonic.Instant, deliveringSignals: Bool = false,
                             stoppingAt isFault: (Int32) -> Bool = { _ in false }) throws(StopFailure) -> Bool {
        guard threads[tid]?.stopped == true else { return false }
        while true {
            var signal: Int32 = 0
            if deliveringSignals, let pending = threads[tid]?.pendingSignal, pending != 0 {
                signal = pending
                threads[tid]!.pendingSignal = 0
            }
            guard try resume(tid, { (tid: ThreadID) throws(SystemError) in try Ptrace.resumeToSystemCall(tid, signal: signal) }) else { return false }
            while true {
                let (eventTid, event) = try nextEvent(until: deadline)
                // A signal `isFault` claims (a fault of injected code) ends the wait in its
                // signal-delivery-stop, not kept for the detach: the caller puts the thread back.
                if eventTid == tid, case let .stopped(signal, eventNumber) = event, eventNumber == 0,
                   signal != TracedProcess.systemCallStopSignal, isFault(signal) {
                    threads[tid]!.stopped = true
                    threads[tid]!.atSystemCall = false
                    return true
                }
                try record(tid: eventTid, event: event)
                guard eventTid == tid else { continue }
                guard let thread = threads[tid], thread.stopped else { return false }
                if thread.atSystemCall { return true }
                // A signal-delivery-stop or an interrupt stop: the signal, if any, is recorded for
                // the detach (record); resume towards the system call.
                break
            }
        }
    }

    /// Resumes `tid` with PTRACE_CONT until the signal-delivery-stop `isAwaited` recognises (given
    /// the stop's signal): a signal the thread sent itself to report that injected code is done,
    /// which is not the program's and is not kept for the detach (released from that stop, the
    /// thread never receives it). Other signals are kept for the detach and the thread is resumed;
    /// a group stop ends the wait with `.groupStopped`. Returns false if the thread died.
    func runToOwnSignal(_ tid: ThreadID, deadline: Monotonic.Instant, isAwaited: (Int32) -> Bool) throws(StopFailure) -> Bool {
        guard threads[tid]?.stopped == true else { return false }
        while true {
            guard try resume(tid, { (tid: ThreadID) throws(SystemError) in try Ptrace.resume(tid) }) else { return false }
            // The thread was just sent off to run injected calls: no event is there yet to look for.
            var first = true
            while true {
                let (eventTid, event) = try nextEvent(until: deadline, expectingNone: first)
                first = false
                if eventTid == tid, case let .stopped(signal, eventNumber) = event, eventNumber == 0, isAwaited(signal) {
                    threads[tid]!.stopped = true
                    return true
                }
                try record(tid: eventTid, event: event)
                guard eventTid == tid else { continue }
                guard let thread = threads[tid], thread.stopped else { return false }
                break
            }
        }
    }

    /// Makes sure `tid` is stopped, asking it to stop (PTRACE_INTERRUPT) and waiting if it runs
    /// (after a wait that ran out of time). Returns false if the thread died.
    func waitForStop(_ tid: ThreadID, deadline: Monotonic.Instant) throws(StopFailure) -> Bool {
        guard let thread = threads[tid] else { return false }
        if thread.stopped { return true }
        do { try Ptrace.interrupt(tid) } catch where error.errno == ESRCH { lose(tid); return false } catch {}
        return try awaitStop(tid, deadline: deadline)
    }

    /// Waits for the stop of `tid`, already asked for (`seizeWaiting`'s interrupt). Returns false
    /// if the thread died.
    func awaitStop(_ tid: ThreadID, deadline: Monotonic.Instant) throws(StopFailure) -> Bool {
        guard let thread = threads[tid] else { return false }
        if thread.stopped { return true }
        while true {
            let (eventTid, event) = try nextEvent(until: deadline)
            try record(tid: eventTid, event: event)
            if eventTid == tid { return threads[tid]?.stopped == true }
        }
    }

    /// `awaitStop` for a thread executing a new program (`seizeWaiting` at an exec): an exec in a
    /// thread other than the leader ends with that thread under the process's id. Returns the
    /// id the thread stopped under, or nil if it died.
    func awaitStopThroughExec(_ tid: ThreadID, deadline: Monotonic.Instant) throws(StopFailure) -> ThreadID? {
        guard let thread = threads[tid] else { return nil }
        if thread.stopped { return tid }
        while true {
            let (eventTid, event) = try nextEvent(until: deadline)
            try record(tid: eventTid, event: event)
            if eventTid == tid { return threads[tid]?.stopped == true ? tid : nil }
            if threads[tid] == nil, let renamed = threads[eventTid], renamed.stopped, eventTid == pid.mainThread { return eventTid }
        }
    }

    /// Whether `tid` is stopped at a system call entry or exit (as `runToSystemCallStop` leaves it).
    func isAtSystemCallStop(_ tid: ThreadID) -> Bool { threads[tid]?.atSystemCall == true }

    /// Notes that a thread was single-stepped out of a patch window.
    func countEvacuation() { evacuations += 1 }

    /// The stopped threads' ids.
    var stoppedThreadIDs: [ThreadID] { threads.filter { $0.value.stopped }.map(\.key).sorted() }

    /// Detaches every thread, re-delivering pending signals. Threads that had not stopped yet are
    /// waited for briefly so they can be detached too; returns when nothing of ours holds the process.
    func release() {
        let grace = Monotonic.now.adding(microseconds: 2_000_000)
        // A thread seized but running (not stopped yet, or resumed by a single-step that blocked in
        // a system call) can only be detached once stopped: ask it to stop again.
        for (tid, thread) in threads where !thread.stopped {
            try? Ptrace.interrupt(tid)
        }
        while !threads.isEmpty {
            for (tid, thread) in threads where thread.stopped { detach(tid) }
            if threads.isEmpty { break }
            // Seized but not yet stopped: wait for its stop (or death), then detach it.
            guard let (tid, event) = (try? Ptrace.nextEvent(until: grace)) ?? nil else {
                // A thread that does not stop within the grace period (an uninterruptible wait)
                // stops once that wait ends, and would then wait for us: this tracer thread lets
                // it go as soon as it does (`Stragglers`).
                Stragglers.keep(threads.keys, of: pid)
                threads.removeAll()
                break
            }
            switch event {
            case .exited, .killed:
                forgetExited(tid)
            case let .stopped(signal, eventNumber):
                // Held again (a thread that ESRCH had made us think dead stops after all).
                dying.remove(tid)
                if threads[tid] == nil { threads[tid] = Thread() }
                threads[tid]!.stopped = true
                if TracedProcess.isProgramSignal(signal, event: eventNumber) { threads[tid]!.pendingSignal = signal }
            }
        }
        reapDying(until: grace)
    }

    /// Lets stopped `tid` go with the signal it brought, and forgets it; one found gone is kept to
    /// reap (`lose`), one the kernel would not detach stays held (`release` tries again).
    private func detach(_ tid: ThreadID) {
        guard let thread = threads[tid], thread.stopped else { return }
        // Our stop alone made an epoll_wait or sigwaitinfo fail with EINTR, which the kernel
        // does not restart: run it again, so the program never sees the stop. With a signal
        // to deliver the EINTR is the program's own, and stays.
        if thread.pendingSignal == 0, !thread.settled, let registers = thread.registers ?? (try? Ptrace.registers(tid)),
           let rerun = HostArchitecture.rerunningCallFailedByStop(registers) {
            try? Ptrace.setRegisters(tid, rerun)
        }
        do {
            try Ptrace.detach(tid, signal: thread.pendingSignal)
            threads[tid] = nil
        } catch where error.errno == ESRCH {
            lose(tid)
        } catch {}
    }

    /// Forgets a thread that a ptrace request found gone, remembering to reap it.
    private func lose(_ tid: ThreadID) {
        threads[tid] = nil
        dying.insert(tid)
    }

    /// Forgets a thread whose exit we have reaped.
    private func forgetExited(_ tid: ThreadID) {
        threads[tid] = nil
        dying.remove(tid)
    }

    /// Waits for the exit of every thread that died while we held it, so the kernel can hand the
    /// process to its parent. A killed process's threads exit one after another, and a dead leader
    /// is reported only after its last sibling, so this waits rather than polls once.
    private func reapDying(until deadline: Monotonic.Instant) {
        while !dying.isEmpty, let (tid, event) = (try? Ptrace.nextEvent(until: deadline)) ?? nil {
            switch event {
            case .exited, .killed:
                forgetExited(tid)
            case let .stopped(signal, eventNumber):
                // ESRCH also answers a request to a thread that was running, not dead: it has
                // stopped now, so let it go with the signal it brought.
                let pending = TracedProcess.isProgramSignal(signal, event: eventNumber) ? signal : 0
                if (try? Ptrace.detach(tid, signal: pending)) != nil { dying.remove(tid) }
            }
        }
        // A thread still dying at the deadline is reported later: kept with the stragglers, whose
        // poll reaps it by its own id. (A poll of any tracee here would also take, and lose, the
        // stop of another hold's straggler, which would then stay stopped.)
        if !dying.isEmpty {
            Stragglers.keep(dying, of: pid)
            dying.removeAll()
        }
    }

    /// The thread tracing thread `tid` of this process, if any and readable.
    private func tracer(of tid: ThreadID) -> ThreadID? {
        (try? ProcFS.status(of: pid, thread: tid))?.tracer
    }

    /// Whether `tid` is a thread of the calling process. /proc/PID/status names a tracer by its
    /// thread id, not its process id.
    static func isOurThread(_ tid: ThreadID) -> Bool {
        (try? Files.status("/proc/self/task/\(tid)")) != nil
    }

    /// Whether the anchor thread still exists (and is not a zombie).
    private var exists: Bool {
        guard let status = try? ProcFS.status(of: pid, thread: anchor) else { return false }
        return status.state != "Z" && status.state != "X"
    }
}
