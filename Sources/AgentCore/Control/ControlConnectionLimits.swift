import AgentProtocol
import Foundation
import Logging

/// How many control connections the agent serves at once, and for whom: any local user may connect
/// to the 0666 socket, so no one user may take every place, and root always keeps some.
public struct ControlLimits: Sendable, Equatable {
    /// The default cap on connections served at once.
    public static let defaultMaximumConnections = 32
    /// The default cap on connections of one user other than root.
    public static let defaultMaximumConnectionsPerUser = 4
    /// The default time between two warnings about refused connections.
    public static let defaultRefusalReportInterval = Duration.seconds(60)

    /// The most connections served at once, root's included.
    public var maximumConnections: Int
    /// The most connections one user other than root may hold at once.
    public var maximumConnectionsPerUser: Int
    /// Places only root may take: other users together hold at most `maximumConnections` minus these.
    public var reservedForRoot: Int
    /// A client that sends no whole request for this long is disconnected.
    public var requestTimeoutSeconds: Double
    /// Refusals are logged at once, then at most once per interval as one summary.
    public var refusalReportInterval: Duration

    /// Limits with the defaults for what is not given; root's reserve defaults to a quarter of the cap.
    public init(maximumConnections: Int = defaultMaximumConnections,
                maximumConnectionsPerUser: Int = defaultMaximumConnectionsPerUser,
                reservedForRoot: Int? = nil,
                requestTimeoutSeconds: Double = ControlProtocol.requestTimeoutSeconds,
                refusalReportInterval: Duration = defaultRefusalReportInterval) {
        self.maximumConnections = maximumConnections
        self.maximumConnectionsPerUser = maximumConnectionsPerUser
        self.reservedForRoot = min(reservedForRoot ?? maximumConnections / 4, maximumConnections)
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.refusalReportInterval = refusalReportInterval
    }

    /// The most connections all users other than root hold together.
    public var unprivilegedShare: Int { maximumConnections - reservedForRoot }
}

/// Why a connection was not admitted; its description completes "agent busy: ".
enum ControlAdmissionRefusal: Sendable, Equatable, CustomStringConvertible {
    /// The peer's user (nil: the kernel could not tell) already holds its share.
    case userLimit(uid: UInt32?, limit: Int)
    /// Users other than root already hold every place not kept for root.
    case unprivilegedShare(limit: Int)
    /// Every place is taken.
    case total(limit: Int)

    /// "uid 65534 already has 4 control connections open; try again".
    var description: String {
        switch self {
        case let .userLimit(uid?, limit):
            return "uid \(uid) already has \(limit) control connections open; try again"
        case let .userLimit(nil, limit):
            return "peers of unknown uid already have \(limit) control connections open; try again"
        case let .unprivilegedShare(limit):
            return "\(limit) control connections of other users than root already open; try again"
        case let .total(limit):
            return "\(limit) control connections already open; try again"
        }
    }
}

/// Counts the connections being served, in all and per peer user, and refuses those beyond the limits.
final class ControlConnectionGate: @unchecked Sendable {
    private let lock = NSLock()
    private var active = 0
    private var activeUnprivileged = 0
    private var activeByUser: [UInt32?: Int] = [:]
    /// The limits applied.
    let limits: ControlLimits

    /// A gate applying `limits`.
    init(limits: ControlLimits) { self.limits = limits }

    /// Admits one more connection from a peer running as `uid` (nil when unknown, counted as one
    /// unprivileged user), or says why not.
    func enter(uid: UInt32?) -> ControlAdmissionRefusal? {
        lock.withLock {
            guard active < limits.maximumConnections else { return .total(limit: limits.maximumConnections) }
            if uid != 0 {
                let held = activeByUser[uid, default: 0]
                guard held < limits.maximumConnectionsPerUser else {
                    return .userLimit(uid: uid, limit: limits.maximumConnectionsPerUser)
                }
                guard activeUnprivileged < limits.unprivilegedShare else {
                    return .unprivilegedShare(limit: limits.unprivilegedShare)
                }
                activeByUser[uid] = held + 1
                activeUnprivileged += 1
            }
            active += 1
            return nil
        }
    }

    /// One admitted connection of `uid` is done.
    func leave(uid: UInt32?) {
        lock.withLock {
            active -= 1
            guard uid != 0 else { return }
            activeUnprivileged -= 1
            let held = activeByUser[uid, default: 1] - 1
            activeByUser[uid] = held == 0 ? nil : held
        }
    }
}

/// Refused connections, counted between two warnings: the first refusal is reported at once, the
/// next ones together once `interval` has passed, so a flood costs the journal one line a minute.
struct ControlRefusalTally {
    /// What one warning says.
    struct Report: Equatable {
        /// Connections refused since the previous warning.
        let count: Int
        /// The peers' users, ascending ("unknown" last): "1000,65534".
        let uids: String
    }

    /// The least time between two warnings.
    let interval: Duration
    private var pending: [UInt32?: Int] = [:]
    private var lastReport: ContinuousClock.Instant?

    /// A tally that reports at most once per `interval`.
    init(interval: Duration) { self.interval = interval }

    /// When the refusals counted so far are due to be reported; nil when none wait.
    var nextReport: ContinuousClock.Instant? {
        guard !pending.isEmpty else { return nil }
        return lastReport.map { $0 + interval }
    }

    /// Counts a refusal of a peer running as `uid`; returns the report to log now, if one is due.
    mutating func record(uid: UInt32?, at now: ContinuousClock.Instant) -> Report? {
        pending[uid, default: 0] += 1
        return reportIfDue(at: now)
    }

    /// The report of what was counted, if the interval since the last one has passed.
    mutating func reportIfDue(at now: ContinuousClock.Instant) -> Report? {
        guard !pending.isEmpty else { return nil }
        if let lastReport, now < lastReport + interval { return nil }
        lastReport = now
        return flush()
    }

    /// The report of whatever was counted and not yet reported (at shutdown), if anything.
    mutating func flush() -> Report? {
        guard !pending.isEmpty else { return nil }
        defer { pending = [:] }
        let uids = pending.keys.sorted { ($0.map(UInt64.init) ?? .max) < ($1.map(UInt64.init) ?? .max) }
            .map { $0.map(String.init) ?? "unknown" }
        return Report(count: pending.values.reduce(0, +), uids: uids.joined(separator: ","))
    }
}

/// A warning a local user could otherwise repeat at will (refused connections, refused privileged
/// requests): logged in full the first time, then as one summary per interval with the count and
/// the uids. Safe to use from any thread; whoever owns it calls `reportIfDue` when `nextReport` comes.
final class ControlRefusalLog: @unchecked Sendable {
    private let lock = NSLock()
    private var tally: ControlRefusalTally
    private let logger: Logger
    private let message: Logger.Message
    private let metadata: Logger.Metadata

    /// Logs `message` with `metadata` (and each report's count and uids) at most once per `interval`.
    init(interval: Duration, logger: Logger, message: Logger.Message, metadata: Logger.Metadata = [:]) {
        tally = ControlRefusalTally(interval: interval)
        self.logger = logger
        self.message = message
        self.metadata = metadata
    }

    /// When counted refusals are due to be logged; nil when none wait.
    var nextReport: ContinuousClock.Instant? { lock.withLock { tally.nextReport } }

    /// Counts one refusal of a peer running as `uid`; `details` (pid, command) are logged with it
    /// when it is logged at once, that is when no warning was logged in the last interval.
    func record(uid: UInt32?, details: Logger.Metadata = [:]) {
        log(lock.withLock { tally.record(uid: uid, at: .now) }, details: details)
    }

    /// Logs what was counted if its time has come.
    func reportIfDue() {
        log(lock.withLock { tally.reportIfDue(at: .now) })
    }

    /// Logs whatever is still counted (at shutdown).
    func flush() {
        log(lock.withLock { tally.flush() })
    }

    private func log(_ report: ControlRefusalTally.Report?, details: Logger.Metadata = [:]) {
        guard let report else { return }
        var fields = metadata.merging(report.count == 1 ? details : [:]) { $1 }
        fields["control.refused"] = "\(report.count)"
        fields["control.refused.uids"] = "\(report.uids)"
        logger.warning(message, metadata: fields)
    }
}
