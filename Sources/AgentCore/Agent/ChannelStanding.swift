import AgentProtocol

/// Where the agent stands with its channel after a check: which verified index stays in force and
/// what status says about it. A pure rule, apart from the I/O that feeds it.
///
/// Once an index was accepted, the channel can no longer be "empty": an index that vanishes (a
/// freeze by whoever controls the mirror, a broken sync), expires, rolls back or cannot be read is
/// an exposure, and the last verified releases stay in force until a newer index verifies.
struct ChannelStanding: Equatable {
    /// What the check of the channel directory found.
    enum Check: Equatable {
        /// The index verified; it is now the one in force.
        case verified
        /// There is no `index.json` in the channel directory.
        case missing
        /// The index (or the keys, or a file) was refused; the refusal's message.
        case refused(String)
    }

    /// The index version in force after the check, if any.
    var versionInForce: Int?
    /// The status line about the channel, or nil when nothing needs saying.
    var reason: AgentStatus.Reason?
    /// The journal's sentence for an exposure, or nil when there is none.
    var logLine: String?

    /// The standing after `check`. `verifiedVersion` is the version that verified (for `.verified`),
    /// `lastVerifiedVersion` the one in force before (kept in memory or in the store), `everAccepted`
    /// whether any index was ever accepted on this host, `missingSince` when the index was first
    /// seen missing, and `keptProblem` why the store's copy could not be brought back, if it could not.
    static func after(_ check: Check, channelDirectory: String, verifiedVersion: Int? = nil, lastVerifiedVersion: Int?,
                      everAccepted: Bool, missingSince: String?, keptProblem: String?) -> ChannelStanding {
        let keeping: String
        if let version = lastVerifiedVersion {
            keeping = "keeping verified version \(version) in force"
        } else if let keptProblem {
            keeping = "no verified version in force: \(keptProblem)"
        } else {
            keeping = "no verified version in force"
        }
        switch check {
        case .verified:
            return ChannelStanding(versionInForce: verifiedVersion, reason: nil, logLine: nil)
        case .missing where !everAccepted && lastVerifiedVersion == nil:
            return ChannelStanding(versionInForce: nil,
                                   reason: .init(verdict: .upToDate, message: "no index published in \(channelDirectory) yet"),
                                   logLine: nil)
        case .missing:
            let index = channelDirectory + "/index.json"
            return ChannelStanding(versionInForce: lastVerifiedVersion,
                                   reason: .init(verdict: .exposed, message: "channel index missing since \(missingSince ?? "now") (\(index)); \(keeping)"),
                                   logLine: "Channel index \(index) is missing after version \(lastVerifiedVersion.map(String.init) ?? "?") was accepted; \(keeping)")
        case let .refused(message):
            return ChannelStanding(versionInForce: lastVerifiedVersion,
                                   reason: .init(verdict: .exposed, message: "channel cannot be verified: \(message); \(keeping)"),
                                   logLine: "Failed to verify the channel: \(message); \(keeping)")
        }
    }
}
