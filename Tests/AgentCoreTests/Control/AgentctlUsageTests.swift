import AgentProtocol
import Foundation
import Testing

/// The built `agentctl` and `hotpatch-agent` binaries at their rough edges: usage errors, help, the
/// busy exit status, and exit-status tables that say the same in --help, the man pages and docs/STATUS.md.
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

    @Test func agentctl_everyExitStatusOfTheTable_isInItsHelpAndManPage() async throws {
        let table = try section(of: try repositoryFile("docs/STATUS.md"), from: "## Exit statuses of every `agentctl` command", to: "Errors go to")
        let documented = Set(table.split(separator: "\n").compactMap { row -> Int? in
            let first = row.split(separator: "|").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            return Int(first)
        })
        #expect(documented == [0, 1, 64, 69, 75, 76, 77])

        let help = try await runAgentctl(["--help"]).stdout
        let helpStatuses = numbers(in: try section(of: help, from: "Exit status:", to: "USAGE"))
        let manStatuses = manPageStatuses(try repositoryFile("packaging/man/agentctl.8"))
        #expect(documented.subtracting(helpStatuses).isEmpty, "missing in --help: \(documented.subtracting(helpStatuses))")
        #expect(manStatuses == documented, "man page: \(manStatuses)")
    }

    @Test func hotpatchAgent_help_listsEveryExitStatusOfItsManPage_64Included() async throws {
        let help = try await Program.run(Products.hotpatchAgent, ["--help"]).stdout
        let helpStatuses = numbers(in: try section(of: help, from: "Exit statuses of --once:", to: "Example:"))
        let manStatuses = manPageStatuses(try repositoryFile("packaging/man/hotpatch-agent.8"))

        #expect(manStatuses == [0, 1, 2, 3, 4, 64, 78])
        #expect(helpStatuses == manStatuses, "--help: \(helpStatuses)")
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
