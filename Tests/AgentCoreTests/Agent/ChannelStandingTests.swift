import AgentProtocol
import Artifact
import Engine
import Foundation
import Testing
@testable import AgentCore

/// Which verified index stays in force after a channel check, and what status says (issue 14, finding 3).
@Suite struct ChannelStandingTests {
    private let directory = "/srv/channel"
    private let expired = ChannelRefusal.expired(path: "/srv/channel/index.json", expires: "X", now: "Y")
    private let badSignature = ChannelRefusal.badSignature(path: "/var/lib/hotpatch-agent/store/index.json", reason: "bad signature")

    private func standing(_ check: ChannelStanding.Check, verified: Int? = nil, last: Int?, everAccepted: Bool,
                          kept: ChannelRefusal? = nil) -> ChannelStanding {
        ChannelStanding.after(check, channelDirectory: directory, verifiedVersion: verified, lastVerifiedVersion: last,
                              everAccepted: everAccepted, missingSince: "2026-12-01T10:00:00Z", keptProblem: kept)
    }

    @Test func verified_putsTheNewVersionInForce_withNothingToSay() {
        let result = standing(.verified, verified: 3, last: 2, everAccepted: true)
        #expect(result.versionInForce == 3)
        #expect(result.reason == nil)
        #expect(result.logLine == nil)
    }

    @Test func missing_beforeAnyIndexWasAccepted_isTheBenignNoIndexYet() {
        let result = standing(.missing, last: nil, everAccepted: false)
        #expect(result.versionInForce == nil)
        #expect(result.reason == .init(verdict: .upToDate, message: "no index published in /srv/channel yet"))
        #expect(result.logLine == nil)
    }

    @Test func missing_afterAnIndexWasAccepted_isExposed_andKeepsTheLastVerifiedVersion() {
        let result = standing(.missing, last: 2, everAccepted: true)
        #expect(result.versionInForce == 2)
        #expect(result.reason == .init(verdict: .exposed,
                                       message: "channel index missing since 2026-12-01T10:00:00Z (/srv/channel/index.json); keeping verified version 2 in force"))
        #expect(result.logLine?.contains("keeping verified version 2 in force") == true)
    }

    @Test func missing_whenTheStoreHoldsAVerifiedIndexButTheStateForgotIt_isStillExposed() {
        #expect(standing(.missing, last: 2, everAccepted: false).reason?.verdict == .exposed)
    }

    @Test func missing_afterAcceptance_withNothingKept_saysSoAndWhy() {
        let result = standing(.missing, last: nil, everAccepted: true, kept: badSignature)
        #expect(result.versionInForce == nil)
        #expect(result.reason?.verdict == .exposed)
        #expect(result.reason?.message.hasSuffix("; no verified version in force: \(badSignature)") == true)
    }

    @Test func refused_expiredOrRolledBack_isExposed_andKeepsTheLastVerifiedVersion() {
        let result = standing(.refused(expired), last: 4, everAccepted: true)
        #expect(result.versionInForce == 4)
        #expect(result.reason == .init(verdict: .exposed,
                                       message: "channel cannot be verified: \(expired); keeping verified version 4 in force"))
        #expect(result.logLine == "Failed to verify the channel: \(expired); keeping verified version 4 in force")
    }

    @Test func refused_beforeAnyIndexWasAccepted_isExposed_withNothingInForce() {
        let result = standing(.refused(badSignature), last: nil, everAccepted: false)
        #expect(result.versionInForce == nil)
        #expect(result.reason?.verdict == .exposed)
        #expect(result.reason?.message == "channel cannot be verified: \(badSignature); no verified version in force")
    }

    @Test func sameRefusalTwice_isTheSameStanding_soTheAgentLogsItOnce_whileAnotherRefusalDiffers() {
        let first = standing(.refused(expired), last: 4, everAccepted: true)
        #expect(standing(.refused(expired), last: 4, everAccepted: true) == first)
        #expect(standing(.refused(badSignature), last: 4, everAccepted: true) != first)
        #expect(standing(.refused(expired), last: 5, everAccepted: true) != first, "another version in force says something new")
    }

    // MARK: A publication being written

    private let mismatch = ChannelRefusal.badSignature(path: "/srv/channel/index.json",
                                                       reason: "the signature in index.json.sig does not match these bytes")
    private let firstSeen = Date(timeIntervalSince1970: 1_764_583_200)  // 2025-12-01T10:00:00Z

    @Test func incomplete_withinTheSettleTime_keepsTheLastVerifiedVersion_withNoErrorAndNothingLogged() {
        let check = ChannelStanding.incomplete(mismatch, since: firstSeen, now: firstSeen.addingTimeInterval(ChannelStanding.settleSeconds - 0.1))
        #expect(check == .incomplete(since: "2025-12-01T10:00:00Z", refusal: mismatch))
        let result = standing(check, last: 4, everAccepted: true)
        #expect(result.versionInForce == 4)
        #expect(result.error == nil, "a publication being written is no failure")
        #expect(result.logLine == nil)
        #expect(result.reason == .init(verdict: .upToDate, message:
            "channel publication incomplete since 2025-12-01T10:00:00Z (/srv/channel/index.json: bad signature: the signature in index.json.sig does not match these bytes); "
            + "waiting up to 5 s for it to complete, keeping verified version 4 in force"))
    }

    @Test func incomplete_pastTheSettleTime_isTheRefusalItIs_inTodaysWords() {
        let check = ChannelStanding.incomplete(mismatch, since: firstSeen, now: firstSeen.addingTimeInterval(ChannelStanding.settleSeconds))
        #expect(check == .refused(mismatch))
        #expect(standing(check, last: 4, everAccepted: true).logLine == "Failed to verify the channel: \(mismatch); keeping verified version 4 in force")
    }

    @Test func incomplete_afterAnExposure_staysExposed_whileItWaits() {
        let expiredBefore = standing(.refused(expired), last: 4, everAccepted: true)
        let waiting = ChannelStanding.after(.incomplete(since: "2025-12-01T10:00:00Z", refusal: mismatch), channelDirectory: directory,
                                            lastVerifiedVersion: 4, everAccepted: true, missingSince: nil, keptProblem: nil,
                                            previous: expiredBefore)
        #expect(waiting.reason?.verdict == .exposed)
        #expect(waiting.error == waiting.reason?.message, "an exposed status always says why in channel.error")
        let stillWaiting = ChannelStanding.after(.incomplete(since: "2025-12-01T10:00:00Z", refusal: mismatch), channelDirectory: directory,
                                                 lastVerifiedVersion: 4, everAccepted: true, missingSince: nil, keptProblem: nil,
                                                 previous: waiting)
        #expect(stillWaiting.reason?.verdict == .exposed)
        let afterVerified = ChannelStanding.after(.incomplete(since: "2025-12-01T10:00:00Z", refusal: mismatch), channelDirectory: directory,
                                                  lastVerifiedVersion: 4, everAccepted: true, missingSince: nil, keptProblem: nil,
                                                  previous: standing(.verified, verified: 4, last: 3, everAccepted: true))
        #expect(afterVerified.reason?.verdict == .upToDate)
        #expect(afterVerified.error == nil, "a publication landing after a verified one is no error")
    }
}
