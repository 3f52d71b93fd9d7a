import AgentProtocol
import Foundation
import Testing

/// The built `agentctl` binary end to end against a real control server.
@Suite struct AgentctlOverControlSocketTests {
    @Test func agentctl_status_printsTheVerdictFirstThenEverySectionAndExitsZero() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(status: .sample(verdict: .rebootRequired)))

        let run = try await runAgentctl(["--socket", directory.socketPath, "status"])

        #expect(run.status == 0, "stderr: \(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "Reboot required")
        for expected in ["deb12-2024.05", "openssl-2024-05 level 2", "CVE-2024-0001", "3 patched, 1 pending, 0 unpatchable",
                         "required — baseline deb12-2024.06 installed", "version 7", "reboot required: sample reason"] {
            #expect(run.stdout.contains(expected), "missing \(expected) in:\n\(run.stdout)")
        }
        try await running.stop()
    }

    @Test func agentctl_statusJSON_printsOnlyTheDocumentWhichParsesBackWithEveryKeyPresent() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var status = AgentStatus.sample(verdict: .exposed)
        status.hotpatch = nil
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(status: status))

        // The global option also works after the subcommand.
        let run = try await runAgentctl(["status", "--json", "--socket", directory.socketPath])

        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(try JSONDecoder().decode(AgentStatus.self, from: Data(run.stdout.utf8)) == status)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(object["hotpatch"] is NSNull)
        #expect((object["channel"] as? [String: Any])?["error"] is NSNull)
        #expect(object["verdict"] as? String == "exposed")
        try await running.stop()
    }

    @Test(arguments: Verdict.allCases)
    func agentctl_statusExitCode_mapsTheVerdictToItsStatus(verdict: Verdict) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(status: .sample(verdict: verdict)))

        let mapped = try await runAgentctl(["--socket", directory.socketPath, "status", "--exit-code"])
        let plain = try await runAgentctl(["--socket", directory.socketPath, "status"])

        let expected: [Verdict: Int32] = [.upToDate: 0, .hotpatchPending: 1, .rebootRequired: 2, .exposed: 3, .unenrolled: 4]
        #expect(mapped.status == expected[verdict])
        #expect(plain.status == 0)
        try await running.stop()
    }

    @Test func agentctl_whenTheSocketIsMissing_exits69WithAHelpfulMessage() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }

        let run = try await runAgentctl(["--socket", directory.socketPath, "status"])

        #expect(run.status == 69)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("cannot reach hotpatch-agent at \(directory.socketPath): no such file — is the service running? (systemctl status hotpatch-agent)"))
    }

    @Test func agentctl_whenTheSocketMayNotBeOpened_exits77() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())
        chmod(directory.socketPath, 0o600)

        let run = try await runAgentctl(["--socket", directory.socketPath, "status"], asNobody: true)

        #expect(run.status == 77)
        #expect(run.stderr.contains("cannot reach hotpatch-agent at \(directory.socketPath): permission denied"))
        try await running.stop()
    }

    @Test func agentctl_whenNothingListensOnTheSocket_exits69() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        makeStaleSocket(at: directory.socketPath)

        let run = try await runAgentctl(["--socket", directory.socketPath, "status", "--json"])

        #expect(run.status == 69)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("nothing is listening"))
    }

    @Test func agentctl_applyAndRevertAsRoot_forwardTheIDAndPrintTheAgentsAccount() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let apply = try await runAgentctl(["--socket", directory.socketPath, "apply", "openssl-2024-05"])
        let revert = try await runAgentctl(["--socket", directory.socketPath, "revert", "openssl-2024-05"])
        let enroll = try await runAgentctl(["--socket", directory.socketPath, "enroll"])
        let check = try await runAgentctl(["--socket", directory.socketPath, "check"])

        #expect(apply.status == 0 && apply.stdout == "applied openssl-2024-05 in 3 processes\n")
        #expect(revert.status == 0 && revert.stdout == "reverted openssl-2024-05 and holding it\n")
        #expect(enroll.status == 0 && enroll.stdout == "enrolled\n")
        #expect(check.status == 0 && check.stdout.hasPrefix("Up to date\n"))
        #expect(await handler.calls == ["apply:openssl-2024-05", "revert:openssl-2024-05", "enroll", "check"])
        try await running.stop()
    }

    @Test func agentctl_whenTheAgentRefusesForAnotherReason_exits1WithItsError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler(failure: TestHandlerFailure(description: "release openssl-9 is unknown"))
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let run = try await runAgentctl(["--socket", directory.socketPath, "apply", "openssl-9"])

        #expect(run.status == 1)
        #expect(run.stderr == "agentctl: release openssl-9 is unknown\n")
        try await running.stop()
    }

    @Test func agentctl_processesAndHistory_printTablesAndJSON() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())

        let table = try await runAgentctl(["--socket", directory.socketPath, "processes"])
        let processesJSON = try await runAgentctl(["--socket", directory.socketPath, "processes", "--json"])
        let history = try await runAgentctl(["--socket", directory.socketPath, "history"])
        let historyJSON = try await runAgentctl(["--socket", directory.socketPath, "history", "--json"], asNobody: true)

        #expect(table.stdout.hasPrefix("PID   STATE        PAUSE   EXECUTABLE       REASON\n"), "\(table.stdout)")
        #expect(table.stdout.contains("99    unpatchable  -       /usr/bin/legacy  seccomp denies ptrace"))
        #expect(try JSONDecoder().decode([ProcessEntry].self, from: Data(processesJSON.stdout.utf8)) == .sample)
        #expect(history.stdout.hasPrefix("TIME"))
        #expect(history.stdout.contains("applied level 2 in 3 processes"))
        #expect(historyJSON.status == 0)
        #expect(try JSONDecoder().decode([HistoryEntry].self, from: Data(historyJSON.stdout.utf8)) == .sample)
        try await running.stop()
    }
}
