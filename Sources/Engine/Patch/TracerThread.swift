import Foundation

/// One dedicated OS thread for ptrace work: the kernel accepts ptrace requests for a tracee only
/// from the thread that attached it, and Swift concurrency moves tasks between threads.
public final class TracerThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false

    /// Starts the thread.
    public init(name: String = "hotpatch-tracer") {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the tracer thread and waits for its result.
    public func perform<T>(_ body: @escaping () throws -> T) throws -> T {
        // The caller blocks until `body` has run, so handing its non-Sendable captures to the
        // tracer thread cannot race with the caller.
        nonisolated(unsafe) let work = body
        nonisolated(unsafe) var result: Result<T, any Error>?
        let done = DispatchSemaphore(value: 0)
        enqueue {
            result = Result { try work() }
            done.signal()
        }
        done.wait()
        return try result!.get()
    }

    /// Runs `body` on the tracer thread without waiting; for fan-out across several threads.
    public func submit(_ body: @escaping @Sendable () -> Void) {
        enqueue(body)
    }

    /// Lets the thread finish its queue and exit.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func enqueue(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping {
                guard Stragglers.pending else {
                    condition.wait()
                    continue
                }
                // A thread a release could not let go waits for this thread once it stops: look
                // for it every 20 ms until it is gone.
                condition.unlock()
                let stillRunning = Stragglers.letGoStopped()
                condition.lock()
                if stillRunning && jobs.isEmpty && !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.02)) }
            }
            if jobs.isEmpty && stopping {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            Stragglers.letGoStopped()
            job()
        }
    }
}
