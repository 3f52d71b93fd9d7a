import Synchronization

/// Proof that the agent's main loop is alive, for the systemd watchdog.
///
/// The loop beats before each step, saying how long that step may take (a cycle, or the wait for
/// the next one). The watchdog pets systemd only while the last beat's allowance has not run out,
/// so a loop wedged in a cycle (a blocking read, a lost continuation) stops the pets and systemd
/// restarts the agent, instead of a side task keeping a dead loop looking healthy.
public final class LoopHeartbeat: Sendable {
    private let deadline = Mutex<ContinuousClock.Instant?>(nil)

    /// A heartbeat that counts as alive until the loop's first beat.
    public init() {}

    /// Records progress now; the loop promises its next beat within `allowance`.
    public func beat(allowing allowance: Duration, now: ContinuousClock.Instant = .now) {
        deadline.withLock { $0 = now.advanced(by: allowance) }
    }

    /// Whether the loop's last promise still holds at `now`.
    public func isAlive(at now: ContinuousClock.Instant = .now) -> Bool {
        deadline.withLock { deadline in deadline.map { now <= $0 } ?? true }
    }

    /// How long ago the last allowance ran out, or nil while the loop is alive.
    public func overdue(at now: ContinuousClock.Instant = .now) -> Duration? {
        deadline.withLock { deadline in deadline.flatMap { now > $0 ? now - $0 : nil } }
    }
}
