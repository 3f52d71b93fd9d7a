import AgentCore
import AgentProtocol
import Foundation
import LinuxSystem
import Testing

/// Request parsing, authorisation and the human texts, without sockets.
@Suite struct ControlRequestParserTests {
    @Test func parser_acceptsEveryCommandAndIgnoresUnknownKeys() {
        for command in ControlRequest.Command.allCases {
            let line = "{\"command\":\"\(command.rawValue)\",\"id\":\"r1\",\"future\":true}"
            #expect(ControlRequestParser.parse(Array(line.utf8)) == .success(ControlRequest(command: command, id: "r1")))
        }
    }

    @Test func parser_namesEachProblem() {
        func problem(_ line: String) -> ControlRequestProblem? {
            if case .failure(let problem) = ControlRequestParser.parse(Array(line.utf8)) { return problem }
            return nil
        }
        #expect(problem("  ") == .empty)
        #expect(problem("status") == .notAJSONObject)
        #expect(problem("[\"status\"]") == .notAJSONObject)
        #expect(problem("{\"cmd\":\"status\"}") == .missingCommand)
        #expect(problem("{\"command\":7}") == .missingCommand)
        #expect(problem("{\"command\":\"STATUS\"}") == .unknownCommand("STATUS"))
        #expect(problem("{\"command\":\"revert\",\"id\":\"\"}") == .missingID(.revert))
        #expect(problem(String(repeating: " ", count: 4097)) == .tooLarge)
    }

    @Test func dispatcher_whenPeerIsUnknown_treatsItAsUnprivileged() async {
        let handler = RecordingHandler()
        let dispatcher = ControlDispatcher(handler: handler, logger: quietLogger)

        let response = await dispatcher.respond(to: ControlRequest(command: .enroll), peer: nil)

        #expect(response == ControlResponse(ok: false, error: "permission denied: enroll requires root (peer unknown)"))
        #expect(response.isPermissionDenied)
        #expect(await handler.calls.isEmpty)
    }

    @Test func dispatcher_whenPeerIsNotRoot_refusesEveryPrivilegedCommandAndAnswersTheOthers() async {
        let handler = RecordingHandler()
        let dispatcher = ControlDispatcher(handler: handler, logger: quietLogger)
        let peer = PeerCredentials(pid: ProcessID(4242), uid: 1000, gid: 1000)

        for command in ControlRequest.Command.allCases {
            let response = await dispatcher.respond(to: ControlRequest(command: command, id: "r1"), peer: peer)
            #expect(response.ok == !command.isPrivileged, "\(command)")
            if command.isPrivileged {
                #expect(response.error == "permission denied: \(command.rawValue) requires root (peer uid 1000)")
            }
        }
        #expect(await handler.calls == ["status", "processes", "history"])
    }

    @Test func statusText_relativeTimes_readNaturally() {
        let now = Date(timeIntervalSince1970: 1_714_557_600)  // 2024-05-01T10:00:00Z
        #expect(ControlText.relative("2024-05-01T10:00:00Z", now: now) == "just now")
        #expect(ControlText.relative("2024-05-01T09:59:18Z", now: now) == "42 s ago")
        #expect(ControlText.relative("2024-05-01T09:58:00.250Z", now: now) == "1 min ago")
        #expect(ControlText.relative("2024-05-01T07:00:00+00:00", now: now) == "3 h ago")
        #expect(ControlText.relative("2024-04-26T10:00:00Z", now: now) == "5 d ago")
        #expect(ControlText.relative("yesterday", now: now) == "yesterday")
    }

    @Test func statusText_showsTheVerdictFirstAndTheChannelErrorAndEveryReason() {
        var status = AgentStatus.sample(verdict: .exposed)
        status.channel.error = "signature by an untrusted key"
        status.reasons.append(.init(verdict: .hotpatchPending, message: "pid 7 busy, retrying"))
        let now = Date(timeIntervalSince1970: 1_714_557_720)

        let text = ControlText.status(status, now: now)

        #expect(text.hasPrefix("Exposed\n"))
        #expect(text.contains("channel:    checked 2 min ago, version 7"))
        #expect(text.contains("channel error: signature by an untrusted key"))
        #expect(text.contains("  - exposed: sample reason for exposed\n  - hotpatch pending: pid 7 busy, retrying"))
    }

    @Test func statusText_listsEachObjectsFix_whenTheLevelInForceFixesSeveralObjects() {
        var status = AgentStatus.sample(verdict: .upToDate)
        status.hotpatch?.objects = [.init(buildId: "aa", path: "/usr/lib/libA.so", hotpatch: "hp1", level: 1),
                                    .init(buildId: "bb", path: "/usr/lib/libB.so", hotpatch: "openssl-2024-05", level: 2)]

        let text = ControlText.status(status, now: Date(timeIntervalSince1970: 1_714_557_720))

        #expect(text.contains("""
              hotpatch:   openssl-2024-05 level 2 — CVE-2024-0001, CVE-2024-0002
                object /usr/lib/libA.so: hp1 level 1
                object /usr/lib/libB.so: openssl-2024-05 level 2
              processes:
            """), "\(text)")
    }

    @Test func processesText_addsALinePerObject_onlyForAProcessWithSeveralObjectsOrAnEarlierLevelsFix() {
        let entries = [
            ProcessEntry(pid: 7, executable: "/usr/bin/app", state: .patched, pauseUsec: 80, hotpatch: "hp2",
                         objects: [.init(path: "/usr/lib/libA.so", buildId: "aa", hotpatch: "hp1", level: 1),
                                   .init(path: "/usr/lib/libB.so", buildId: "bb", hotpatch: "hp2", level: 2)]),
            ProcessEntry(pid: 8, executable: "/usr/bin/other", state: .unpatchable, reason: "/usr/lib/libB.so: traced",
                         objects: [.init(path: "/usr/lib/libA.so", buildId: "aa"),
                                   .init(path: "/usr/lib/libB.so", buildId: "bb", reason: "unpatchable: traced")]),
            ProcessEntry(pid: 9, executable: "/usr/bin/simple", state: .patched, hotpatch: "hp2",
                         objects: [.init(path: "/usr/lib/libB.so", buildId: "bb", hotpatch: "hp2", level: 2)]),
        ]

        let lines = ControlText.processes(entries).split(separator: "\n").map(String.init)

        #expect(lines.count == 8, "\(lines)")
        #expect(lines[1].hasPrefix("7 "))
        #expect(lines[2] == "    object /usr/lib/libA.so: hp1 level 1")
        #expect(lines[3] == "    object /usr/lib/libB.so: hp2 level 2")
        #expect(lines[5] == "    object /usr/lib/libA.so: none")
        #expect(lines[6] == "    object /usr/lib/libB.so: none (refused: unpatchable: traced)")
        #expect(lines[7].hasPrefix("9 "))
    }
}
