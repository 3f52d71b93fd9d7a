import Dispatch
import Glibc
import Logging
import Synchronization

/// Bounds graceful shutdown: once SIGTERM (or SIGINT) arrives, the process gets `limit` to stop on
/// its own; past that, `onExpiry` runs (in the agent: log and exit at once).
///
/// Graceful shutdown waits for the cycle in flight, which is right while it progresses and wrong
/// when it is wedged in a system call that cancellation cannot interrupt. The signal is watched by a
/// dispatch source on a queue of its own, outside Swift's cooperative pool, so the deadline holds
/// even when every cooperative thread is stuck. Exiting then is no worse than the `kill -9` the
/// agent is built (and tested) to survive: no target is left stopped or half-patched.
public final class ShutdownDeadline: @unchecked Sendable {
    /// How long the agent may take to stop after SIGTERM: well inside systemd's default
    /// `TimeoutStopSec=` (90 s), long enough to finish a patch pass over many processes.
    public static let agentLimit: Duration = .seconds(30)

    private let queue = DispatchQueue(label: "hotpatch-agent.shutdown-deadline")
    private var sources: [DispatchSourceSignal] = []
    private let armed = Mutex(false)

    /// Watches `signals`; `limit` after the first one, calls `onExpiry` on the deadline's own queue.
    public init(signals: [Int32] = [SIGTERM, SIGINT], limit: Duration,
                onExpiry: @escaping @Sendable () -> Void) {
        let queue = self.queue
        sources = signals.map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let first = self.armed.withLock { armed in
                    defer { armed = true }
                    return !armed
                }
                guard first else { return }
                let (seconds, attoseconds) = limit.components
                let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
                queue.asyncAfter(deadline: .now() + .nanoseconds(nanoseconds), execute: onExpiry)
            }
            source.resume()
            return source
        }
    }

    deinit { sources.forEach { $0.cancel() } }

    /// The agent's deadline: past `limit`, say so on `logger` and exit with status 1.
    public static func exitingAgent(limit: Duration = agentLimit, logger: Logger) -> ShutdownDeadline {
        ShutdownDeadline(limit: limit) {
            logger.critical("Did not stop within \(limit) of the stop signal (a cycle is stuck); exiting now")
            _exit(1)
        }
    }
}
