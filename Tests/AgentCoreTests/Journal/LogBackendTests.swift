@testable import AgentCore
import Glibc
import Logging
import Testing

@Suite struct JournalLogBackendTests {
    @Test func autoChoosesJournalWhenSystemdConnectedOurStderrToIt() {
        #expect(LogBackend.resolve(.auto, environment: ["JOURNAL_STREAM": "8:1234"], journalSocketExists: false) == .journal)
    }

    @Test func autoChoosesJournalWhenTheJournalSocketExists() {
        #expect(LogBackend.resolve(.auto, environment: [:], journalSocketExists: true) == .journal)
    }

    @Test func autoFallsBackToStderrWithoutJournald() {
        #expect(LogBackend.resolve(.auto, environment: [:], journalSocketExists: false) == .stderr)
        #expect(LogBackend.resolve(.auto, environment: ["JOURNAL_STREAM": ""], journalSocketExists: false) == .stderr)
    }

    @Test func anExplicitTargetIsNeverOverridden() {
        #expect(LogBackend.resolve(.stderr, environment: ["JOURNAL_STREAM": "8:1"], journalSocketExists: true) == .stderr)
        #expect(LogBackend.resolve(.journal, environment: [:], journalSocketExists: false) == .journal)
    }

    @Test func forcedTargetsMakeTheMatchingHandler() {
        #expect(LogBackend.makeHandler(label: "x", target: .stderr) is StderrLogHandler)
        #expect(LogBackend.makeHandler(label: "x", target: .journal) is JournalLogHandler)
        #expect(LogBackend.makeHandler(label: "x", target: .stderr, level: .debug).logLevel == .debug)
    }

    @Test func logTargetParsesTheCommandLineSpellings() {
        #expect(LogTarget(rawValue: "auto") == .auto)
        #expect(LogTarget(rawValue: "stderr") == .stderr)
        #expect(LogTarget(rawValue: "journal") == .journal)
        #expect(LogTarget(rawValue: "syslog") == nil)
    }
}

@Suite struct JournalStderrHandlerTests {
    @Test func lineIsLevelMessageThenSortedKeyValuesWithSpacedValuesQuoted() {
        let line = StderrLogHandler.format(
            level: .warning, message: "Process cannot be hotpatched",
            metadata: ["target.pid": "4242", "reason": "another tracer attached", "event": "process-unpatchable"])
        #expect(line == #"warning Process cannot be hotpatched event=process-unpatchable reason="another tracer attached" target.pid=4242"#)
    }

    @Test func newlinesAndQuotesNeverBreakTheOneLinePerEventRule() {
        let line = StderrLogHandler.format(level: .info, message: "a\nb", metadata: ["reason": "say \"hi\"\nbye", "empty": ""])
        #expect(!line.contains("\n"))
        #expect(line == #"info a\nb empty="" reason="say \"hi\"\nbye""#)
    }

    @Test func aWindowsLineEndInsideAValueIsEscapedToo() {
        // "\r\n" is one Character in Swift: the escape works on bytes.
        let line = StderrLogHandler.format(level: .info, message: "a\r\nb", metadata: ["reason": "x\r\ny"])
        #expect(!line.utf8.contains(UInt8(ascii: "\n")))
        #expect(line == "info a\r\\nb reason=\"x\r\\ny\"")
    }

    @Test func handlerWritesOneLinePerEventToItsDescriptor() throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        var logger = Logger(label: "test") { StderrLogHandler(label: $0, metadataProvider: nil, fileDescriptor: fds[1]) }
        logger[metadataKey: "baseline.id"] = "base-2"
        logger.log(event: .applied, "Applied hotpatch", metadata: ["hotpatch.id": "hp-7"])
        logger.debug("not shown at the default info level")
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fds[0], &buffer, buffer.count)
        let text = String(decoding: buffer[..<max(count, 0)], as: UTF8.self)
        #expect(text == "notice Applied hotpatch baseline.id=base-2 event=applied hotpatch.id=hp-7\n")
    }
}
