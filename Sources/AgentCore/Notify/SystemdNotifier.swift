import CSystemd
import Glibc

/// Tells the service manager about the agent's state (`Type=notify`) through `sd_notify`.
///
/// Every call is harmless outside systemd: with no `NOTIFY_SOCKET`, `sd_notify` does nothing.
public struct SystemdNotifier: Sendable {
    /// A notifier for this process.
    public init() {}

    /// Whether `NOTIFY_SOCKET` is set, i.e. a service manager listens for our notifications.
    public var isUnderSystemd: Bool {
        guard let value = getenv("NOTIFY_SOCKET") else { return false }
        return value.pointee != 0
    }

    /// The watchdog interval systemd expects (`WatchdogSec=`), or nil when none is armed for us.
    ///
    /// The corresponding C function is `sd_watchdog_enabled`, which also checks `WATCHDOG_PID`.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// Reports start-up finished (`READY=1`), with a status line.
    @discardableResult
    public func ready(status: String) -> Bool {
        send(["READY=1", "STATUS=" + Self.oneLine(status)])
    }

    /// Sets the one-line status `systemctl status` shows (`STATUS=`).
    @discardableResult
    public func status(_ text: String) -> Bool {
        send(["STATUS=" + Self.oneLine(text)])
    }

    /// Pets the watchdog (`WATCHDOG=1`).
    @discardableResult
    public func watchdog() -> Bool {
        send(["WATCHDOG=1"])
    }

    /// Reports that shutdown has begun (`STOPPING=1`).
    @discardableResult
    public func stopping() -> Bool {
        send(["STOPPING=1"])
    }

    /// Reports a configuration reload (`RELOADING=1`).
    ///
    /// systemd ≥ 253 (`Type=notify-reload`) wants `MONOTONIC_USEC` with it to order the reload;
    /// older managers ignore the extra field. Send `ready(status:)` when the reload is done.
    @discardableResult
    public func reloading() -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
        return send(["RELOADING=1", "MONOTONIC_USEC=\(usec)"])
    }

    /// Sends the assignments in one datagram; true when one was sent.
    ///
    /// The corresponding C function is `sd_notify`: 0 means no socket, negative an errno. Failures
    /// are not thrown: a lost notification is for systemd to notice (timeout or watchdog).
    private func send(_ assignments: [String]) -> Bool {
        sd_notify(0, assignments.joined(separator: "\n")) > 0
    }

    /// A status line is one line: the protocol separates assignments by newlines.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
