import AgentProtocol
import Testing

/// "CODE NAME" for each row of the table under `## Exit statuses` in docs/STATUS.md, in order.
func documentedExitStatuses() throws -> [String] {
    let text = try repositoryFile("docs/STATUS.md")
    let section = try #require(text.components(separatedBy: "\n## Exit statuses\n").dropFirst().first?
        .components(separatedBy: "\n## ").first, "docs/STATUS.md has no ## Exit statuses section")
    return section.split(separator: "\n").compactMap { row -> String? in
        let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count >= 2, let code = Int32(cells[0]), cells[1].hasPrefix("`") else { return nil }
        return "\(code) \(cells[1].trimmingCharacters(in: ["`"]))"
    }
}

/// The one exit table: `ExitStatus` in the code, its meanings in docs/STATUS.md alone.
@Suite struct ExitStatusTableTests {
    @Test func statusDocsExitTable_listsEveryExitStatusWithItsCodeAndName_inOrder_andNoOther() throws {
        let documented = try documentedExitStatuses()
        let code = ExitStatus.allCases.map { "\($0.code) \($0.name)" }
        #expect(documented == code, "missing: \(Set(code).subtracting(documented).sorted()); not in the code: \(Set(documented).subtracting(code).sorted())")
    }

    @Test func verdictStatuses_areNamedAsTheVerdicts() {
        #expect(ExitStatus(verdict: .upToDate) == .ok)
        for verdict in Verdict.allCases where verdict != .upToDate { #expect(ExitStatus(verdict: verdict).name == verdict.rawValue) }
        #expect(ExitStatus.verdictSummary == "0 up-to-date, 1 hotpatch-pending, 2 reboot-required, 3 exposed, 4 unenrolled")
        #expect(ExitStatus.summary([.usage, .configuration]) == "64 usage, 78 configuration")
    }
}
