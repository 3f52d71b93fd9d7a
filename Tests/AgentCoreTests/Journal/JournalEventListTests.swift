@testable import AgentCore
import Foundation
import Testing

/// docs/STATUS.md's event table and the journal catalog list exactly the events the code has.
@Suite struct JournalEventListTests {
    private var everyEvent: Set<String> { Set(JournalEvent.allCases.map { "\($0.rawValue) \($0.messageID)" }) }

    /// "name id" for each row of the table under `## Events` in docs/STATUS.md.
    private func documentedEvents() throws -> [String] {
        let text = try String(contentsOfFile: repositoryRoot + "/docs/STATUS.md", encoding: .utf8)
        let section = try #require(text.components(separatedBy: "\n## Events\n").dropFirst().first?
            .components(separatedBy: "\n## ").first, "docs/STATUS.md has no ## Events section")
        return section.split(separator: "\n").compactMap { row -> String? in
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, cells[0].hasPrefix("`"), cells[1].hasPrefix("`") else { return nil }
            return cells[0].trimmingCharacters(in: ["`"]) + " " + cells[1].trimmingCharacters(in: ["`"])
        }
    }

    /// "name id" for each entry of the catalog: the `# Event: NAME` comment, then `-- ID`.
    private func catalogEvents() throws -> [String] {
        let text = try String(contentsOfFile: repositoryRoot + "/systemd/hotpatch-agent.catalog", encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return try lines.indices.filter { lines[$0].hasPrefix("-- ") }.map { index in
            let name = index > 0 && lines[index - 1].hasPrefix("# Event: ") ? String(lines[index - 1].dropFirst(9)) : nil
            return "\(try #require(name, "no # Event: line before \(lines[index])")) \(lines[index].dropFirst(3))"
        }
    }

    @Test func statusDocsEventTable_listsEveryEventWithItsMessageID_andNoOther() throws {
        let documented = try documentedEvents()
        #expect(documented.count == Set(documented).count, "an event listed twice")
        #expect(Set(documented) == everyEvent,
                "missing: \(everyEvent.subtracting(documented).sorted()); not in the code: \(Set(documented).subtracting(everyEvent).sorted())")
    }

    @Test func catalog_namesEveryEventBeforeItsEntry_andHasNoOther() throws {
        let catalog = try catalogEvents()
        #expect(catalog.count == Set(catalog).count, "an entry listed twice")
        #expect(Set(catalog) == everyEvent,
                "missing: \(everyEvent.subtracting(catalog).sorted()); not in the code: \(Set(catalog).subtracting(everyEvent).sorted())")
    }

    @Test func messageIDs_are32LowercaseHexDigits_andUnique() {
        let ids = JournalEvent.allCases.map(\.messageID)
        #expect(Set(ids).count == ids.count)
        for id in ids { #expect(id.count == 32 && id.allSatisfy { $0.isHexDigit && !$0.isUppercase }, "\(id)") }
    }
}
