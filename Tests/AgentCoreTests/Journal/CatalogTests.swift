@testable import AgentCore
import Foundation
import Testing

/// The catalog file shipped in `systemd/`, relative to the repository.
private let catalogFile = "systemd/hotpatch-agent.catalog"

/// One entry of a journal catalog: `-- <id>`, header lines up to a blank line, then the text.
private struct CatalogEntry {
    var id: String
    var headers: [String: String]
    var body: String
}

/// Parses the catalog the way `journalctl --update-catalog` reads it (catalog.c): lines starting
/// with `#` are comments wherever they are, `-- ` plus 32 hex digits opens an entry, `Key: value`
/// headers follow.
private func parseCatalog(_ text: String) throws -> [CatalogEntry] {
    var entries: [CatalogEntry] = []
    var inHeaders = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("#") { continue }
        if line.hasPrefix("-- ") {
            let id = String(line.dropFirst(3))
            guard id.count == 32, id.allSatisfy(\.isHexDigit) else { throw FixtureError.setUp("bad entry line: \(line)") }
            entries.append(CatalogEntry(id: id, headers: [:], body: ""))
            inHeaders = true
            continue
        }
        guard !entries.isEmpty else {
            if !line.isEmpty { throw FixtureError.setUp("text before the first entry: \(line)") }
            continue
        }
        if inHeaders {
            if line.isEmpty { inHeaders = false; continue }
            guard let colon = line.firstIndex(of: ":") else { throw FixtureError.setUp("bad header: \(line)") }
            entries[entries.count - 1].headers[String(line[..<colon])] =
                line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        } else {
            entries[entries.count - 1].body += line + "\n"
        }
    }
    return entries
}

@Suite struct JournalCatalogTests {
    // That the catalog holds every event's id once and no other: JournalEventListTests.
    @Test func everyEntryHasSubjectDefinedBySupportAndAnExplanation() throws {
        for entry in try parseCatalog(repositoryFile(catalogFile)) {
            #expect(!(entry.headers["Subject"] ?? "").isEmpty, "\(entry.id) lacks Subject")
            #expect(entry.headers["Defined-By"] == "hotpatch-agent", "\(entry.id)")
            #expect(!(entry.headers["Support"] ?? "").isEmpty, "\(entry.id) lacks Support")
            #expect(entry.body.trimmingCharacters(in: .whitespacesAndNewlines).count > 40, "\(entry.id) has no explanation")
        }
    }

    @Test func substitutionsNameOnlyFieldsTheHandlerCanProduce() throws {
        let text = try repositoryFile(catalogFile)
        let known: Set<String> = [
            "HOTPATCH_ID", "BASELINE_ID", "TARGET_PID", "TARGET_EXE", "BUILD_ID", "PAUSE_USEC", "LOAD_PAUSE_USEC", "REASON", "CVE",
            "CHANNEL_VERSION", "HOTPATCH_KERNEL_RELEASE", "HOTPATCH_KERNEL_BUILD_ID", "HOTPATCH_LIVEPATCH",
            "TARGET_COMM", "TARGET_UNIT", "TARGET_OBJECTS", "HOTPATCH_PACKAGES",
        ]
        let pattern = try NSRegularExpression(pattern: "@([A-Z0-9_]+)@")
        let matches = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text))
        let used = Set(matches.map { String(text[Range($0.range(at: 1), in: text)!]) })
        #expect(!used.isEmpty)
        #expect(used.isSubset(of: known), "unknown substitutions: \(used.subtracting(known))")
    }

    @Test func journalctlCompilesTheCatalogAndListsEveryEvent() throws {
        let journalctl = "/usr/bin/journalctl"
        guard FileManager.default.isExecutableFile(atPath: journalctl) else { return }  // parsed above regardless
        let scratch = try TemporaryDirectory(prefix: "hotpatch-catalog"), root = scratch.path
        defer { scratch.remove() }
        let directory = root + "/usr/lib/systemd/catalog"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/" + catalogFile, toPath: directory + "/hotpatch-agent.catalog")

        func run(_ arguments: [String]) throws -> ProgramRun {
            try Program.run(journalctl, ["--root=\(root)"] + arguments)
        }
        let update = try run(["--update-catalog"])
        #expect(update.status == 0, "\(update.output)")
        let list = try run(["--list-catalog"])
        for event in JournalEvent.allCases {
            #expect(list.output.contains("\(event.messageID) hotpatch-agent:"), "\(event) missing from journalctl's list")
        }
    }
}
