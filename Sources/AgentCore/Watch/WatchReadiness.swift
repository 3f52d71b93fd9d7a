import Dispatch
import Synchronization

/// Tells the agent's loop that the watches a patch depends on are in place, so its first cycle
/// patches nothing before them.
///
/// The health check judges a process that dies soon after its patch by its exit (a process event)
/// and by the kernel's fault report of it: the process events reach only a stream taken after the
/// subscription, and the fault log is read from the moment it is opened. The loop and the process
/// watch start together, so without this the first cycle could patch a process, and the process
/// die of the hotpatch, before either exists: dropped by the next pass, unjudged.
public final class WatchReadiness: Sendable {
    private struct State {
        var ready = false
        /// Each wait under way, by id: nil until its continuation exists. An id no longer here
        /// was given up on (the limit, or cancelled).
        var waiters: [UInt64: CheckedContinuation<Bool, Never>?] = [:]
        var nextWaiter: UInt64 = 0
    }
    private let state = Mutex(State())

    /// Readiness not yet declared.
    public init() {}

    /// Declares the watches in place: every wait returns true, now and later.
    public func declareReady() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.ready = true
            defer { state.waiters.removeAll() }
            return state.waiters.values.compactMap { $0 }
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Whether readiness has been declared.
    public var isReady: Bool { state.withLock(\.ready) }

    /// Returns true once readiness is declared, or false after `limit` (or when the task is
    /// cancelled) without it.
    public func wait(atMost limit: Duration) async -> Bool {
        let id = state.withLock { state -> UInt64? in
            guard !state.ready else { return nil }
            state.nextWaiter += 1
            state.waiters.updateValue(nil, forKey: state.nextWaiter)
            return state.nextWaiter
        }
        guard let id else { return true }
        // A Dispatch timer, not a task: it fires on time even while the cooperative threads are
        // all busy (the waiter itself resumes when one is free).
        let timer = DispatchWorkItem { [self] in giveUp(id) }
        let (seconds, attoseconds) = limit.components
        // At most about 136 years, so the product cannot overflow.
        let nanoseconds = min(max(0, seconds), Int64(UInt32.max)) * 1_000_000_000 + attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds)), execute: timer)
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let resumeNow = state.withLock { state -> Bool? in
                    // Declared, or given up on (limit, cancel), before the continuation existed.
                    if state.ready { return true }
                    guard state.waiters.index(forKey: id) != nil else { return false }
                    state.waiters[id] = continuation
                    return nil
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
        } onCancel: {
            giveUp(id)
        }
    }

    /// Ends wait `id` with false, if it still waits.
    private func giveUp(_ id: UInt64) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
        waiter??.resume(returning: false)
    }
}
