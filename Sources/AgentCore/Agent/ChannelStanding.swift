import AgentProtocol
import Artifact
import Engine
import Foundation

/// Where the agent stands with its channel after a check: which verified index stays in force and
/// what status says about it. A pure rule, apart from the I/O that feeds it. The refusal stays
/// typed (`ChannelRefusal`) until status or the journal words it.
///
/// Once an index was accepted, the channel can no longer be "empty": an index that vanishes (a
/// freeze by whoever controls the mirror, a broken sync), expires, rolls back or cannot be read is
/// an exposure, and the last verified releases stay in force until a newer index verifies.
///
/// A publication being written (`ChannelCheckOutcome.incomplete`: the index before its signature,
/// files the index names not synced yet) is neither: the last verified index stays in force with
/// nothing to report, and only a publication still incomplete after `settleSeconds` is reported, as
/// the refusal it is.
struct ChannelStanding: Equatable, Sendable {
    /// What the check of the channel directory found.
    enum Check: Equatable, Sendable {
        /// The index verified; it is now the one in force.
        case verified
        /// There is no `index.json` in the channel directory.
        case missing
        /// A publication is being written and has not reached its commit point (its signature
        /// renamed into place after its index, every file it names complete) since `since`
        /// (RFC 3339); `refusal` is what it is reported as if it stays so for `settleSeconds`.
        case incomplete(since: String, refusal: ChannelRefusal)
        /// The index (or the keys, or a file) was refused.
        case refused(ChannelRefusal)
    }

    /// How long a publication may stay incomplete before it is reported as refused. A publisher
    /// renames the index and then its signature within milliseconds, and a sync tool copies a
    /// channel's files within seconds; a signature that still does not match after this (a
    /// tampered index, a sync that stopped halfway) is reported with today's words.
    static let settleSeconds: Double = 5

    /// What a check that found the publication incomplete (`refusal`) counts as, given when it was
    /// first found so (`since`): still incomplete within `settleSeconds`, refused from then on.
    static func incomplete(_ refusal: ChannelRefusal, since: Date, now: Date) -> Check {
        guard now.timeIntervalSince(since) < settleSeconds else { return .refused(refusal) }
        return .incomplete(since: RFC3339.format(since.timeIntervalSince1970), refusal: refusal)
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
    /// While a publication is incomplete: whether the standing before it was an exposure (a
    /// refused or missing index), which waiting does not lift.
    var exposedBefore = false

    /// The standing after `check`. `verifiedVersion` is the version that verified (for `.verified`),
    /// `lastVerifiedVersion` the one in force before (kept in memory or in the store), `everAccepted`
    /// whether any index was ever accepted on this host, `missingSince` when the index was first
    /// seen missing, `keptProblem` why the store's copy could not be brought back, if it could not,
    /// and `previous` the standing before this check.
    static func after(_ check: Check, channelDirectory: String, verifiedVersion: Int? = nil, lastVerifiedVersion: Int?,
                      everAccepted: Bool, missingSince: String?, keptProblem: ChannelRefusal?,
                      previous: ChannelStanding? = nil) -> ChannelStanding {
        let version = check == .verified ? verifiedVersion : lastVerifiedVersion
        var exposedBefore = false
        if case .incomplete = check { exposedBefore = previous?.reason?.verdict == .exposed }
        return ChannelStanding(check: check, channelDirectory: channelDirectory, versionInForce: version,
                               everAccepted: everAccepted, missingSince: check == .missing ? missingSince : nil,
                               keptProblem: check == .verified ? nil : keptProblem, exposedBefore: exposedBefore)
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
        case let .incomplete(since, refusal):
            // Waiting changes nothing: the host is as exposed as it was before the publication began.
            let exposed = exposedBefore || (versionInForce == nil && everAccepted)
            return .init(verdict: exposed ? .exposed : .upToDate,
                         message: "channel publication incomplete since \(since) (\(refusal.path): \(refusal.reason)); "
                             + "waiting up to \(Int(Self.settleSeconds)) s for it to complete, \(keeping)")
        case let .refused(refusal):
            return .init(verdict: .exposed, message: "channel cannot be verified: \(refusal); \(keeping)")
        }
    }

    /// Why the channel's own index is not the one in force (status's `channel.error`), or nil; a
    /// publication still being written is no failure, unless the host was exposed before it began
    /// (a refused or missing channel stays an error while the next publication lands).
    var error: String? {
        if case .incomplete = check, reason?.verdict != .exposed { return nil }
        return reason?.message
    }

    /// The journal's sentence for an exposure, or nil when there is none.
    var logLine: String? {
        switch check {
        case .verified:
            return nil
        case .missing where !everAccepted && versionInForce == nil, .incomplete:
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
