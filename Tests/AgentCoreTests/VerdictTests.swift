import AgentProtocol
import Testing

@Test func verdict_precedenceOrdersUnenrolledAboveExposedAboveRebootAbovePendingAboveUpToDate() {
    #expect(Verdict.unenrolled > .exposed)
    #expect(Verdict.exposed > .rebootRequired)
    #expect(Verdict.rebootRequired > .hotpatchPending)
    #expect(Verdict.hotpatchPending > .upToDate)
    #expect([Verdict.hotpatchPending, .exposed, .upToDate].max() == .exposed)
}
