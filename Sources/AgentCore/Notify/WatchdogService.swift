import Logging
import ServiceLifecycle

/// Pets the systemd watchdog at half its interval until graceful shutdown, while the agent's main
/// loop proves it is alive (`LoopHeartbeat`).
///
/// The pets come from their own service so that a long but progressing cycle is not mistaken for a
/// hang; the heartbeat makes sure a wedged loop is: once the loop misses its promised beat the pets
/// stop, and systemd restarts the agent after `WatchdogSec=`.
public final class WatchdogService: Service {
    private let notifier: SystemdNotifier
    private let interval: Duration?
    private let heartbeat: LoopHeartbeat?
    private let logger: Logger?

    /// A watchdog service using `notifier`, with systemd's interval unless `interval` overrides it;
    /// with a `heartbeat`, it pets only while that heartbeat is alive (and logs once when it is not).
    public init(notifier: SystemdNotifier = SystemdNotifier(), interval: Duration? = nil,
                heartbeat: LoopHeartbeat? = nil, logger: Logger? = nil) {
        self.notifier = notifier
        self.interval = interval ?? notifier.watchdogInterval
        self.heartbeat = heartbeat
        self.logger = logger
    }

    /// The period between pings: half the watchdog interval, or nil when no watchdog is armed.
    public var pingPeriod: Duration? { interval.map { $0 / 2 } }

    /// Pings until graceful shutdown; with no watchdog armed it just waits for shutdown, because a
    /// service that returns early would make the service group stop everything.
    public func run() async throws {
        guard let period = pingPeriod else {
            try? await gracefulShutdown()
            return
        }
        let notifier = self.notifier
        var starving = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let overdue = heartbeat?.overdue() {
                if !starving {
                    starving = true
                    logger?.critical("The main loop missed its heartbeat by \(overdue); no longer petting the watchdog, so systemd restarts the agent")
                }
            } else {
                starving = false
                notifier.watchdog()
            }
            // Shutdown or cancellation interrupts the sleep; either way we stop pinging quietly.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period) }
        }
    }
}
