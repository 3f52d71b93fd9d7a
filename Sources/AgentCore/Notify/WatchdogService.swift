import ServiceLifecycle

/// Pets the systemd watchdog at half its interval until graceful shutdown.
///
/// Pinging from its own service means a stalled reconciler does not starve the watchdog, but a hung
/// process (or a wedged cooperative pool) still gets restarted by systemd.
public final class WatchdogService: Service {
    private let notifier: SystemdNotifier
    private let interval: Duration?

    /// A watchdog service using `notifier`, with systemd's interval unless `interval` overrides it.
    public init(notifier: SystemdNotifier = SystemdNotifier(), interval: Duration? = nil) {
        self.notifier = notifier
        self.interval = interval ?? notifier.watchdogInterval
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
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            notifier.watchdog()
            // Shutdown or cancellation interrupts the sleep; either way we stop pinging quietly.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: period) }
        }
    }
}
