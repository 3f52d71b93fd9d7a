@testable import AgentCore
import Logging
import Testing

@Suite struct JournalFieldsTests {
    private func fields(_ metadata: Logger.Metadata, level: Logger.Level = .info) -> [JournalField] {
        JournalFields.fields(
            level: level, message: "Applied hotpatch", metadata: metadata, file: "AgentCore/Reconciler.swift",
            function: "apply(_:)", line: 42)
    }

    private func value(_ name: String, in fields: [JournalField]) -> [String] {
        fields.filter { $0.name == name }.map(\.value)
    }

    @Test func ourDottedKeysBecomeTheDocumentedUpperCaseFields() {
        let result = fields([
            "hotpatch.id": "hp-7", "baseline.id": "base-2", "target.pid": "4242", "target.exe": "/usr/sbin/nginx",
            "build.id": "abcd", "pause.usec": "87", "reason": "busy", "cve": "CVE-2024-1",
        ])
        #expect(value("HOTPATCH_ID", in: result) == ["hp-7"])
        #expect(value("BASELINE_ID", in: result) == ["base-2"])
        #expect(value("TARGET_PID", in: result) == ["4242"])
        #expect(value("TARGET_EXE", in: result) == ["/usr/sbin/nginx"])
        #expect(value("BUILD_ID", in: result) == ["abcd"])
        #expect(value("PAUSE_USEC", in: result) == ["87"])
        #expect(value("REASON", in: result) == ["busy"])
        #expect(value("CVE", in: result) == ["CVE-2024-1"])
    }

    @Test func everyEntryCarriesMessagePriorityIdentifierAndCodeLocation() {
        let result = fields([:], level: .warning)
        #expect(value("MESSAGE", in: result) == ["Applied hotpatch"])
        #expect(value("PRIORITY", in: result) == ["4"])
        #expect(value("SYSLOG_IDENTIFIER", in: result) == ["hotpatch-agent"])
        #expect(value("CODE_FILE", in: result) == ["AgentCore/Reconciler.swift"])
        #expect(value("CODE_LINE", in: result) == ["42"])
        #expect(value("CODE_FUNC", in: result) == ["apply(_:)"])
    }

    @Test func swiftLogLevelsMapToSyslogPriorities() {
        let expected: [Logger.Level: Int] = [
            .trace: 7, .debug: 7, .info: 6, .notice: 5, .warning: 4, .error: 3, .critical: 2,
        ]
        for (level, priority) in expected { #expect(JournalFields.priority(level) == priority) }
    }

    @Test func eventMetadataBecomesTheEventsMessageID() {
        let result = fields(["event": "apply-failed"])
        #expect(value("MESSAGE_ID", in: result) == [JournalEvent.applyFailed.messageID])
        #expect(value("EVENT", in: result).isEmpty)
    }

    @Test func unknownEventNameIsKeptAsAnOrdinaryFieldWithoutMessageID() {
        let result = fields(["event": "no-such-event"])
        #expect(value("MESSAGE_ID", in: result).isEmpty)
        #expect(value("EVENT", in: result) == ["no-such-event"])
    }

    @Test func unknownKeysAreSanitisedIntoValidJournalFieldNames() {
        #expect(JournalFields.fieldName(forKey: "channel.version") == "CHANNEL_VERSION")
        #expect(JournalFields.fieldName(forKey: "retry-after ms") == "RETRY_AFTER_MS")
        #expect(JournalFields.fieldName(forKey: "_trusted") == "TRUSTED")
        #expect(JournalFields.fieldName(forKey: "9lives") == "F_9LIVES")
        #expect(JournalFields.fieldName(forKey: "größe") == "GR__E")
        #expect(JournalFields.fieldName(forKey: "") == "UNNAMED")
        #expect(JournalFields.fieldName(forKey: String(repeating: "a", count: 100)).count == 64)
        for key in ["a.b", "_x", "9", "ü", "message", "priority"] {
            let name = JournalFields.fieldName(forKey: key)
            #expect(name.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
            #expect(!name.hasPrefix("_") && !(name.first?.isNumber ?? true))
        }
    }

    @Test func metadataCannotForgeTheFieldsTheHandlerSets() {
        let result = fields(["message": "forged", "priority": "0"])
        #expect(value("MESSAGE", in: result) == ["Applied hotpatch"])
        #expect(value("PRIORITY", in: result) == ["6"])
        #expect(value("META_MESSAGE", in: result) == ["forged"])
        #expect(value("META_PRIORITY", in: result) == ["0"])
    }

    @Test func arraysBecomeRepeatedFieldsAndDictionariesFlatten() {
        let result = fields(["cve": ["CVE-2024-1", "CVE-2024-2"], "target": ["pid": "7", "exe": "/bin/x"]])
        #expect(value("CVE", in: result) == ["CVE-2024-1", "CVE-2024-2"])
        #expect(value("TARGET_PID", in: result) == ["7"])
        #expect(value("TARGET_EXE", in: result) == ["/bin/x"])
    }

    @Test func callMetadataOverridesProviderWhichOverridesHandler() {
        let provider = Logger.MetadataProvider { ["reason": "provider", "hotpatch.id": "from-provider"] }
        let merged = JournalFields.merge(
            handler: ["reason": "handler", "baseline.id": "b"], provider: provider, call: ["reason": "call"])
        #expect(merged["reason"] == "call")
        #expect(merged["hotpatch.id"] == "from-provider")
        #expect(merged["baseline.id"] == "b")
    }

    @Test func everyEventHasADistinctFixedLowercaseHexMessageID() {
        let ids = JournalEvent.allCases.map(\.messageID)
        #expect(Set(ids).count == JournalEvent.allCases.count)
        for id in ids {
            #expect(id.count == 32)
            #expect(id.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) })
        }
        #expect(JournalEvent(messageID: JournalEvent.quarantined.messageID) == .quarantined)
        // Pinned: these ids are public contract (catalog, administrators' filters) and never change.
        #expect(JournalEvent.applied.messageID == "dd23786464f3442c8c85d35313ba3cbc")
        #expect(JournalEvent.quarantined.messageID == "a6fd6a680cf04b778b4057a8c4c35337")
    }

    @Test func quarantineIsLoggedAtErrorPriority() {
        #expect(JournalEvent.quarantined.defaultLevel == .error)
        #expect(JournalFields.priority(JournalEvent.quarantined.defaultLevel) == 3)
    }
}
