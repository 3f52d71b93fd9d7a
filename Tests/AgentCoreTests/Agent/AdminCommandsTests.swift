@testable import AgentCore
@testable import Artifact
import Foundation
import Testing

/// The administrator's commands (apply, revert, enroll, unenroll) decided on the state alone:
/// the state they leave, what they log and what `agentctl` is answered.
@Suite struct AdminCommandsTests {
    private let channel = VerifiedChannel(
        version: 3, expires: .distantFuture,
        releases: [.baseline(BaselineRelease(id: "B1", planned: true, description: "", cves: [], files: [])),
                   .hotpatch(HotpatchRelease(hotpatch: Hotpatch(id: "h1", baseline: "B1", level: 1, targets: []), description: "", cves: []))],
        keyFingerprint: "ab", indexSHA256: "cd")

    private func decide(_ command: AdminCommand, _ state: AgentState = AgentState()) throws -> AdminDecision {
        try AdminCommands.decide(command, state: state, channel: channel)
    }

    @Test func apply_ofAHeldHotpatch_liftsTheHold_andSaysItIsReleased() throws {
        var state = AgentState()
        state.held = ["h1", "h9"]
        let decision = try decide(.apply(id: "h1"), state)
        #expect(decision.state.held == ["h9"])
        #expect(decision.answer == "h1: released and applied where it is the desired level")
        #expect(decision.events == [.recorded(.released, release: "h1", "Administrator lifted the hold on h1", level: .notice,
                                              metadata: ["hotpatch.id": "h1"])])
    }

    @Test func apply_ofAQuarantinedHotpatch_liftsTheQuarantine() throws {
        var state = AgentState()
        state.quarantined["h1"] = "crashed in the health window"
        let decision = try decide(.apply(id: "h1"), state)
        #expect(decision.state.quarantined.isEmpty)
        #expect(decision.events.map(\.message) == ["Administrator lifted the quarantine on h1"])
        #expect(decision.answer == "h1: released and applied where it is the desired level")
    }

    @Test func apply_ofAHotpatchNeitherHeldNorQuarantined_changesNothing_andSaysSo() throws {
        let decision = try decide(.apply(id: "h1"))
        #expect(decision.state == AgentState())
        #expect(decision.events.map(\.message) == ["Administrator lifted nothing on h1"])
        #expect(decision.answer == "h1: nothing held; reconciled")
    }

    /// A baseline's id is no hotpatch either.
    @Test(arguments: ["B1", "nope"])
    func applyAndRevert_ofAnIdThatIsNoHotpatchInTheChannel_areRefusedNamingIt(_ id: String) {
        #expect(throws: AgentCoreError.unknownRelease(id: id)) { try decide(.apply(id: id)) }
        #expect(throws: AgentCoreError.unknownRelease(id: id)) { try decide(.revert(id: id)) }
    }

    @Test func apply_withoutAVerifiedChannel_isRefusedNamingTheId() {
        #expect(throws: AgentCoreError.unknownRelease(id: "h1")) {
            try AdminCommands.decide(.apply(id: "h1"), state: AgentState(), channel: nil)
        }
    }

    @Test func revert_holdsTheHotpatchOnce_evenWhenAskedTwice() throws {
        let once = try decide(.revert(id: "h1"))
        let twice = try decide(.revert(id: "h1"), once.state)
        #expect(once.state.held == ["h1"])
        #expect(twice.state.held == ["h1"])
        #expect(twice.answer == "h1: reverted everywhere and held (agentctl apply h1 to lift)")
        #expect(twice.events == [.recorded(.held, release: "h1", "Administrator reverted and held h1", level: .notice,
                                           metadata: ["hotpatch.id": "h1"])])
    }

    @Test func enroll_setsEnrolled_andAnswersEnrolled_evenWhenAlreadyEnrolled() throws {
        var state = AgentState()
        state.enrolled = false
        let first = try decide(.enroll, state)
        let again = try decide(.enroll, first.state)
        #expect(first.state.enrolled && again.state.enrolled)
        #expect(again.answer == "enrolled")
        #expect(again.events == [.recorded(.enrolled, release: nil, "Host enrolled: hotpatches will be applied", level: .notice)])
    }

    @Test func unenroll_clearsEnrolled_andSaysOurHotpatchesAreReverted_evenWhenAlreadyUnenrolled() throws {
        let first = try decide(.unenroll)
        let again = try decide(.unenroll, first.state)
        #expect(!first.state.enrolled && !again.state.enrolled)
        #expect(again.answer == "unenrolled: hotpatches reverted")
        #expect(again.events == [.recorded(.unenrolled, release: nil, "Host unenrolled: reverting our hotpatches, applying none", level: .notice)])
    }

    @Test func enrollAndUnenroll_workWithoutAChannel() throws {
        #expect(try AdminCommands.decide(.unenroll, state: AgentState(), channel: nil).answer == "unenrolled: hotpatches reverted")
        #expect(try AdminCommands.decide(.enroll, state: AgentState(), channel: nil).answer == "enrolled")
    }
}
