@testable import AgentCore
import AgentProtocol
import Testing

/// The one exit table `hotpatch-agent --once` and `agentctl` share, and what `--once` prints.
@Suite struct OnceRunTests {
    @Test func everyVerdict_exitsAsAgentctlStatusExitCodeDoes() {
        let codes = Dictionary(uniqueKeysWithValues: Verdict.allCases.map { ($0, ExitStatus(verdict: $0).code) })
        #expect(codes == [.upToDate: 0, .hotpatchPending: 1, .rebootRequired: 2, .exposed: 3, .unenrolled: 4])
        for verdict in Verdict.allCases { #expect(verdict.exitCode == ExitStatus(verdict: verdict).code) }
    }

    @Test func failuresOfTheExchange_useSysexitsCodes_andNoneCollidesWithAVerdictButRefusedWithPending() {
        #expect(ExitStatus.usage.code == 64)
        #expect(ExitStatus.unavailable.code == 69)
        #expect(ExitStatus.busy.code == 75)
        #expect(ExitStatus.protocolError.code == 76)
        #expect(ExitStatus.noPermission.code == 77)
        #expect(ExitStatus.configuration.code == 78)
        #expect(ExitStatus.refused.code == 1)
        let codes = ExitStatus.allCases.filter { $0 != .refused }.map(\.code)
        #expect(codes.count == Set(codes).count, "one meaning per code, but 1 (pending with a verdict, refused without)")
    }

    @Test func onceExitStatus_isTheVerdicts() {
        var status = StatusBuilder.status(StatusFacts(
            state: AgentState(), stateProblem: nil, records: [], excludedCount: 0, lastPause: nil, channel: nil, standing: nil,
            lastCheck: nil, plan: nil, bootID: "b", faultReportsUnavailable: nil, configuration: AgentConfiguration(),
            processWatch: "scan", agentVersion: "0"))
        #expect(OnceRun.exitStatus(status) == .ok)
        status.verdict = .hotpatchPending
        #expect(OnceRun.exitStatus(status).code == 1)
        status.verdict = .unenrolled
        #expect(OnceRun.exitStatus(status).code == 4)
    }

    @Test func report_isTheSummaryLine_thenEveryReasonThatIsNotUpToDate() {
        var state = AgentState()
        state.held = ["hp9"]
        state.activeBaseline = "B1"
        let status = StatusBuilder.status(StatusFacts(
            state: state, stateProblem: nil,
            records: [ProcessRecord(identity: .init(pid: .init(7), startTime: 1), executable: "/bin/app", state: .pending, reason: "busy")],
            excludedCount: 0, lastPause: nil, channel: nil, standing: nil, lastCheck: nil, plan: nil, bootID: "b",
            faultReportsUnavailable: nil, configuration: AgentConfiguration(), processWatch: "scan", agentVersion: "0"))
        #expect(OnceRun.report(status) == """
            hotpatch-agent: hotpatch pending; baseline B1; 0 patched, 1 pending, 0 unpatchable
              hotpatch-pending: PID 7 (/bin/app): busy, retrying

            """)
    }
}
