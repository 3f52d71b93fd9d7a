import Foundation
import LinuxSystem
import Synchronization

/// Threads a hold seized and could not let go: still running when its release stopped waiting for
/// them (a thread in an uninterruptible wait takes no stop until the wait ends; a vfork(2) parent
/// waits so until its child execs or exits). Only the OS thread that seized a thread can detach
/// it, and once its wait ends it stops and waits for that tracer: left alone, it would stay
/// stopped until that tracer happened to wait again. Each tracer thread therefore keeps its own
/// stragglers and lets each go as soon as it stops (`TracerThread` looks between its jobs; a hold
/// that sees one's event lets it go too).
enum Stragglers {
    /// One straggler: the thread and its process (an exec in the thread gives it the process's id).
    private struct Straggler: Hashable {
        let thread: ThreadID
        let process: ProcessID
    }

    /// Each tracer thread's stragglers, by the tracer's own thread id.
    private static let byTracer = Mutex<[Int32: Set<Straggler>]>([:])
    /// How many tracer threads have stragglers: the usual zero costs a hold one atomic load.
    private static let tracersWithStragglers = Atomic<Int>(0)

    /// Keeps `threads` of `process`, seized by the calling thread and not let go, to let go later.
    static func keep(_ threads: some Sequence<ThreadID>, of process: ProcessID) {
        let added = Set(threads.map { Straggler(thread: $0, process: process) })
        guard !added.isEmpty else { return }
        let tracer = ThreadID.current.rawValue
        byTracer.withLock { all in
            if all[tracer] == nil { tracersWithStragglers.add(1, ordering: .relaxed) }
            all[tracer, default: []].formUnion(added)
        }
    }

    /// Whether the calling thread has stragglers.
    static var pending: Bool {
        guard tracersWithStragglers.load(ordering: .relaxed) > 0 else { return false }
        let tracer = ThreadID.current.rawValue
        return byTracer.withLock { $0[tracer] != nil }
    }

    /// Whether `tid` is one of the calling thread's stragglers (or the process id one took on by
    /// an exec).
    static func contains(_ tid: ThreadID) -> Bool {
        guard tracersWithStragglers.load(ordering: .relaxed) > 0 else { return false }
        let tracer = ThreadID.current.rawValue
        return byTracer.withLock { all in
            all[tracer]?.contains { $0.thread == tid || $0.process.mainThread == tid } ?? false
        }
    }

    /// Lets go `tid`, a straggler of the calling thread whose `event` was just taken: detached
    /// from its stop (with the signal it brought, if it is the program's), or forgotten once ended.
    static func letGo(_ tid: ThreadID, after event: TraceEvent) {
        if case let .stopped(signal, eventNumber) = event {
            try? Ptrace.detach(tid, signal: TracedProcess.isProgramSignal(signal, event: eventNumber) ? signal : 0)
        }
        forget { $0.thread == tid || $0.process.mainThread == tid }
    }

    /// Lets go every straggler of the calling thread that has stopped, and forgets those that
    /// ended. Returns whether some are still running. Each is waited for by its own id (never
    /// "any tracee"), so a hold in progress on this thread is never disturbed.
    @discardableResult
    static func letGoStopped() -> Bool {
        guard pending else { return false }
        let tracer = ThreadID.current.rawValue
        let mine = byTracer.withLock { $0[tracer] ?? [] }
        var done: [Straggler] = []
        for straggler in mine {
            // After an exec from another thread than the leader, the thread stops under the
            // process's id: looked for under both.
            let ids = straggler.thread == straggler.process.mainThread ? [straggler.thread] : [straggler.thread, straggler.process.mainThread]
            var running = false
            for id in ids {
                do {
                    guard let event = try Ptrace.pollEvent(of: id) else {
                        running = true
                        continue
                    }
                    if case let .stopped(signal, eventNumber) = event {
                        try? Ptrace.detach(id, signal: TracedProcess.isProgramSignal(signal, event: eventNumber) ? signal : 0)
                    }
                    running = false
                    break
                } catch {
                    // ECHILD: not (or no longer) a tracee of this thread under this id.
                }
            }
            if !running { done.append(straggler) }
        }
        let finished = Set(done)
        forget { finished.contains($0) }
        return pending
    }

    private static func forget(_ isDone: (Straggler) -> Bool) {
        let tracer = ThreadID.current.rawValue
        byTracer.withLock { all in
            guard var mine = all[tracer] else { return }
            mine = mine.filter { !isDone($0) }
            if mine.isEmpty {
                all[tracer] = nil
                tracersWithStragglers.subtract(1, ordering: .relaxed)
            } else {
                all[tracer] = mine
            }
        }
    }
}
