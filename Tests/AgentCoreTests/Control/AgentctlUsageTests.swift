import AgentProtocol
import Foundation
import Testing

/// The built `agentctl` and `hotpatch-agent` binaries at their rough edges: usage errors, help, the
/// busy exit status, and exit statuses in --help and the man pages that follow the one table (`ExitStatus`, docs/STATUS.md).
@Suite struct AgentctlUsageTests {
    @Test func agentctl_withoutACommand_printsUsageAndExits64() async throws {
        let run = try await runAgentctl([])

        #expect(run.status == 64)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("a command is required: status, processes, history, check, apply, revert, enroll, unenroll"), "\(run.stderr)")
        #expect(run.stderr.contains("Usage: agentctl"), "\(run.stderr)")
    }

    @Test func agentctl_withAnEmptySocketPath_saysItIsEmptyAndExits64() async throws {
        for arguments in [["--socket", "", "status"], ["status", "--socket", ""]] {
            let run = try await runAgentctl(arguments)

            #expect(run.status == 64, "\(arguments)")
            #expect(run.stderr.contains("--socket is empty"), "\(run.stderr)")
            #expect(!run.stderr.contains("too long"), "\(run.stderr)")
        }
    }

    @Test func agentctl_withAnOverlongSocketPath_namesTheLimitAndExits64() async throws {
        let run = try await runAgentctl(["--socket", "/" + String(repeating: "s", count: 199), "status"])

        #expect(run.status == 64)
        #expect(run.stderr.contains("--socket is 200 bytes long; a Unix socket path holds at most 107"), "\(run.stderr)")
    }

    @Test func agentctl_help_mentionsEverySubcommandAndTheVerdictStatuses() async throws {
        let run = try await runAgentctl(["--help"])

        #expect(run.status == 0)
        for subcommand in ["status", "processes", "check", "apply", "revert", "enroll", "unenroll", "history", "--socket"] {
            #expect(run.stdout.contains(subcommand), "help lacks \(subcommand)")
        }
        let statusHelp = try await runAgentctl(["status", "--help"])
        // Help wraps lines; compare with white space collapsed.
        let flowing = statusHelp.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(flowing.contains("0 up-to-date, 1 hotpatch-pending, 2 reboot-required, 3 exposed, 4 unenrolled"))
        #expect(statusHelp.stdout.contains("Examples:"))
    }

    @Test func agentctl_applyWithoutAnID_isAUsageError() async throws {
        let run = try await runAgentctl(["--socket", "/nonexistent/control.sock", "apply"])

        #expect(run.status == 64)
        #expect(run.stderr.contains("Missing expected argument '<id>'"))
    }

    @Test func agentctl_whenItsUserHoldsEveryPlaceItMayHave_exits75WithTheAgentsBusyAnswer() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler, requestTimeoutSeconds: 60)
        let hostile = try await blocking { Result { try HostileControlClient(socket: directory.socketPath, count: 4) } }.get()
        #expect(try await send(ControlRequest(command: .status), to: directory.socketPath).ok)
        #expect(try await blocking { Result { try hostile.burst() } }.get().held == 4)

        let run = try await runAgentctl(["--socket", directory.socketPath, "status"], asNobody: true)

        #expect(run.status == 75)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr == "agentctl: agent busy: uid 65534 already has 4 control connections open; try again\n")
        #expect(await handler.calls == ["status"], "only root's request reached the agent")
        _ = try await blocking { Result { try hostile.stop() } }.get()
        try await running.stop()
    }

    @Test func agentctl_everyExitStatusOfTheTable_isInItsManPageWithItsName_andItsOwnInItsHelp() async throws {
        let documented = try documentedExitStatuses()
        #expect(!documented.isEmpty)
        let page = try repositoryFile("packaging/man/agentctl.8")
        #expect(manPageStatuses(page) == Set(ExitStatus.allCases.map { Int($0.code) }), "man page: \(manPageStatuses(page))")
        let exitSection = try section(of: page, from: ".SH EXIT STATUS", to: ".SH ")
        for status in ExitStatus.allCases { #expect(exitSection.contains("(\(status.name))"), "man page lacks \(status.name)") }

        let help = try await runAgentctl(["--help"]).stdout
        let helpStatuses = numbers(in: try section(of: help, from: "Exit status:", to: "USAGE"))
        let agentctlStatuses: Set<Int> = [0, 1, 64, 69, 75, 76, 77]
        #expect(agentctlStatuses.subtracting(helpStatuses).isEmpty, "missing in --help: \(agentctlStatuses.subtracting(helpStatuses))")
    }

    @Test func hotpatchAgent_help_listsItsStatusesFromTheTable_andItsManPagePointsToAgentctls() async throws {
        let help = try await Program.run(Products.hotpatchAgent, ["--help"]).stdout
        let flowing = try section(of: help, from: "Exit statuses of --once:", to: "Example:").split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(flowing.contains(ExitStatus.verdictSummary), "\(flowing)")
        #expect(flowing.contains("64 usage, 78 configuration"), "\(flowing)")
        #expect(flowing.contains("docs/STATUS.md"), "\(flowing)")

        let page = try repositoryFile("packaging/man/hotpatch-agent.8")
        #expect(manPageStatuses(page).isEmpty, "hotpatch-agent.8 repeats the table")
        #expect(try section(of: page, from: ".SH EXIT STATUS", to: ".SH ").contains(".BR agentctl (8),\nEXIT STATUS"))
    }

    /// The text between the first `start` and the next `end` after it.
    private func section(of text: String, from start: String, to end: String) throws -> String {
        let head = try #require(text.range(of: start), "no \(start)")
        let tail = text.range(of: end, range: head.upperBound..<text.endIndex)?.lowerBound ?? text.endIndex
        return String(text[head.upperBound..<tail])
    }

    /// Every whole number in `text` ("1–4" gives 1 and 4).
    private func numbers(in text: String) -> Set<Int> {
        Set(text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) })
    }

    /// The statuses a man page's EXIT STATUS section lists, one `.B N` tag each.
    private func manPageStatuses(_ page: String) -> Set<Int> {
        let exitSection = page.components(separatedBy: ".SH EXIT STATUS").dropFirst().first?.components(separatedBy: ".SH ").first ?? ""
        return Set(exitSection.split(separator: "\n").compactMap { line in
            line.hasPrefix(".B ") ? Int(line.dropFirst(3).trimmingCharacters(in: .whitespaces)) : nil
        })
    }
}
