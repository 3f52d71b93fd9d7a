import AgentProtocol
import Artifact
import Engine

/// Where the agent stands with its channel after a check: which verified index stays in force and
/// what status says about it. A pure rule, apart from the I/O that feeds it. The refusal stays
/// typed (`ChannelRefusal`) until status or the journal words it.
///
/// Once an index was accepted, the channel can no longer be "empty": an index that vanishes (a
/// freeze by whoever controls the mirror, a broken sync), expires, rolls back or cannot be read is
/// an exposure, and the last verified releases stay in force until a newer index verifies.
struct ChannelStanding: Equatable, Sendable {
    /// What the check of the channel directory found.
    enum Check: Equatable, Sendable {
        /// The index verified; it is now the one in force.
        case verified
        /// There is no `index.json` in the channel directory.
        case missing
        /// The index (or the keys, or a file) was refused.
        case refused(ChannelRefusal)
    }

    /// What the check found.
    var check: Check
    /// The channel directory checked.
    var channelDirectory: String
    /// The index version in force after the check, if any.
    var versionInForce: Int?
    /// Whether any index was ever accepted on this host.
    var everAccepted: Bool
    /// When the index was first seen missing (RFC 3339), while it stays missing.
    var missingSince: String?
    /// Why the store's copy of the last verified index could not be brought back, if it could not.
    var keptProblem: ChannelRefusal?

    /// The standing after `check`. `verifiedVersion` is the version that verified (for `.verified`),
    /// `lastVerifiedVersion` the one in force before (kept in memory or in the store), `everAccepted`
    /// whether any index was ever accepted on this host, `missingSince` when the index was first
    /// seen missing, and `keptProblem` why the store's copy could not be brought back, if it could not.
    static func after(_ check: Check, channelDirectory: String, verifiedVersion: Int? = nil, lastVerifiedVersion: Int?,
                      everAccepted: Bool, missingSince: String?, keptProblem: ChannelRefusal?) -> ChannelStanding {
        let version = check == .verified ? verifiedVersion : lastVerifiedVersion
        return ChannelStanding(check: check, channelDirectory: channelDirectory, versionInForce: version,
                               everAccepted: everAccepted, missingSince: check == .missing ? missingSince : nil,
                               keptProblem: check == .verified ? nil : keptProblem)
    }

    /// The status line about the channel, or nil when nothing needs saying.
    var reason: AgentStatus.Reason? {
        switch check {
        case .verified:
            return nil
        case .missing where !everAccepted && versionInForce == nil:
            return .init(verdict: .upToDate, message: "no index published in \(channelDirectory) yet")
        case .missing:
            return .init(verdict: .exposed, message: "channel index missing since \(missingSince ?? "now") (\(indexPath)); \(keeping)")
        case let .refused(refusal):
            return .init(verdict: .exposed, message: "channel cannot be verified: \(refusal); \(keeping)")
        }
    }

    /// Why the channel's own index is not the one in force (status's `channel.error`), or nil.
    var error: String? { reason?.message }

    /// The journal's sentence for an exposure, or nil when there is none.
    var logLine: String? {
        switch check {
        case .verified:
            return nil
        case .missing where !everAccepted && versionInForce == nil:
            return nil
        case .missing:
            return "Channel index \(indexPath) is missing after version \(versionInForce.map(String.init) ?? "?") was accepted; \(keeping)"
        case let .refused(refusal):
            return "Failed to verify the channel: \(refusal); \(keeping)"
        }
    }

    private var indexPath: String { channelDirectory + "/index.json" }

    private var keeping: String {
        if let versionInForce { return "keeping verified version \(versionInForce) in force" }
        if let keptProblem { return "no verified version in force: \(keptProblem)" }
        return "no verified version in force"
    }
}
