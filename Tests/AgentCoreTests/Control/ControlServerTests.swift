import AgentCore
import AgentProtocol
import Foundation
import Logging
import ServiceLifecycle
import Testing

/// The control server over real Unix sockets in temporary directories.
@Suite struct ControlServerTests {
    @Test func server_whenRootAsksForStatus_answersWithTheHandlersStatus() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler(status: .sample(verdict: .hotpatchPending))
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let response = try await send(ControlRequest(command: .status), to: directory.socketPath)

        #expect(response.ok)
        #expect(response.status == .sample(verdict: .hotpatchPending))
        #expect(await handler.calls == ["status"])
        try await running.stop()
    }

    @Test func server_whenUnprivilegedPeerAsksForStatus_answers() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let run = try await runAgentctl(["--socket", directory.socketPath, "status", "--json"], asNobody: true)

        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(try JSONDecoder().decode(AgentStatus.self, from: Data(run.stdout.utf8)) == .sample(verdict: .upToDate))
        #expect(await handler.calls == ["status"])
        try await running.stop()
    }

    @Test func server_whenUnprivilegedPeerAsksToUnenroll_refusesWithoutCallingTheHandler() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let run = try await runAgentctl(["--socket", directory.socketPath, "unenroll"], asNobody: true)

        #expect(run.status == 77)
        #expect(run.stderr.contains("permission denied: unenroll requires root (peer uid 65534)"))
        #expect(await handler.calls.isEmpty)
        try await running.stop()
    }

    @Test func server_whenRootAsksToApply_forwardsTheIDAndLogsThePeer() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let records = LogRecords()
        let logger = Logger(label: "control-test", factory: { _ in RecordingLogHandler(records: records) })
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler, logger: logger)

        let response = try await send(ControlRequest(command: .apply, id: "openssl-2024-05"), to: directory.socketPath)

        #expect(response == ControlResponse(ok: true, message: "applied openssl-2024-05 in 3 processes"))
        #expect(await handler.calls == ["apply:openssl-2024-05"])
        let privileged = records.all.first { $0.metadata["control.command"] == "apply" }
        #expect(privileged?.metadata["control.peer.uid"] == "0")
        #expect(privileged?.metadata["control.peer.pid"] == "\(getpid())")
        #expect(privileged?.metadata["control.id"] == "openssl-2024-05")
        try await running.stop()
    }

    @Test func server_whenTheHandlerThrows_answersWithTheErrorsDescription() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler(failure: TestHandlerFailure(description: "no release openssl-9 in the channel"))
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let response = try await send(ControlRequest(command: .revert, id: "openssl-9"), to: directory.socketPath)

        #expect(response == ControlResponse(ok: false, error: "no release openssl-9 in the channel"))
        try await running.stop()
    }

    @Test func server_whenRequestIsMalformedJSON_answersWithAnErrorNamingTheProblem() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let response = try await exchange("{\"command\": \"status\"\n", with: directory.socketPath)

        #expect(!response.ok)
        #expect(response.error?.contains("malformed request: not a JSON object") == true)
        #expect(await handler.calls.isEmpty)
        try await running.stop()
    }

    @Test func server_whenCommandIsUnknown_answersWithTheKnownCommands() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())

        let response = try await exchange("{\"command\":\"reboot\"}\n", with: directory.socketPath)

        #expect(!response.ok)
        #expect(response.error?.hasPrefix("unknown command \"reboot\"") == true)
        #expect(response.error?.contains("status, processes, history, check, apply, revert, enroll, unenroll") == true)
        try await running.stop()
    }

    @Test func server_whenApplyHasNoID_refusesWithoutCallingTheHandler() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let response = try await exchange("{\"command\":\"apply\"}\n", with: directory.socketPath)

        #expect(!response.ok)
        #expect(response.error?.hasPrefix("apply requires \"id\"") == true)
        #expect(await handler.calls.isEmpty)
        try await running.stop()
    }

    @Test func server_whenRequestIsOversized_refusesItAndServesOthersMeanwhile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())

        // The first client is mid-request: 3000 bytes and no newline yet.
        let slow = try RawSocket(connectingTo: directory.socketPath)
        defer { slow.close() }
        slow.send(String(repeating: " ", count: 3000))
        let meanwhile = try await send(ControlRequest(command: .status), to: directory.socketPath)
        #expect(meanwhile.ok)

        slow.send(String(repeating: " ", count: 2000))
        let answer = await slow.readToEnd(within: 5)

        #expect(answer.ended)
        #expect(try decodeResponse(answer.text) == ControlResponse(ok: false, error: "request larger than 4096 bytes"))
        try await running.stop()
    }

    @Test func server_whenClientStaysSilent_dropsItAfterTheTimeoutWhileServingOthers() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // What matters is the order — the other client is answered while the silent one is still
        // held — not how fast: a timeout long enough for a loaded 2-CPU machine keeps it so.
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(),
                                                    requestTimeoutSeconds: 3)
        let silent = try RawSocket(connectingTo: directory.socketPath)
        defer { silent.close() }
        let started = Date()

        let meanwhile = try await send(ControlRequest(command: .status), to: directory.socketPath)
        #expect(meanwhile.ok)
        let stillHeld = Date().timeIntervalSince(started) < 3
        #expect(stillHeld, "the other client waited for the silent one's timeout")

        let answer = await silent.readToEnd(within: 10)
        #expect(answer.ended)
        #expect(Date().timeIntervalSince(started) >= 3)
        #expect(try decodeResponse(answer.text).error == "no request within 3.0 seconds")
        try await running.stop()
    }

    @Test func server_whenConnectionsExceedTheCap_refusesTheExtraOneWithAnError() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A long request timeout: under load the two silent connections must not be closed for
        // idleness before the third arrives (which would admit it).
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(),
                                                    maximumConnections: 2, requestTimeoutSeconds: 60)
        // The start-up probe's connection holds a place until its serving task runs, which can take
        // long when the whole suite shares 2 CPUs: take both places only once it has left, i.e.
        // once neither of ours was refused (the server admits or refuses at accept time).
        var held: [RawSocket] = []
        for _ in 0..<50 {
            let candidates = [try RawSocket(connectingTo: directory.socketPath), try RawSocket(connectingTo: directory.socketPath)]
            var refused = false
            for candidate in candidates where candidate.readToEndBlocking(within: 0.1).ended { refused = true }
            if !refused { held = candidates; break }
            candidates.forEach { $0.close() }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(held.count == 2, "the probe's place was never given back")
        defer { held.forEach { $0.close() } }

        let extra = try RawSocket(connectingTo: directory.socketPath)
        defer { extra.close() }
        let answer = await extra.readToEnd(within: 5)

        #expect(answer.ended)
        #expect(try decodeResponse(answer.text).error?.hasPrefix("agent busy: 2 control connections already open") == true)
        try await running.stop()
    }

    @Test func server_whenAStaleSocketFileIsLeft_replacesIt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        makeStaleSocket(at: directory.socketPath)
        #expect(FileManager.default.fileExists(atPath: directory.socketPath))

        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())

        #expect(try await send(ControlRequest(command: .status), to: directory.socketPath).ok)
        try await running.stop()
    }

    @Test func server_whenAnotherServerListensOnTheSocket_refusesToStart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())

        let second = ControlServer(socketPath: directory.socketPath, handler: RecordingHandler(), logger: quietLogger)
        await #expect(throws: ControlServerError.alreadyListening(path: directory.socketPath)) {
            try await second.run()
        }

        // The first server is untouched and still answers.
        #expect(try await send(ControlRequest(command: .status), to: directory.socketPath).ok)
        try await running.stop()
    }

    @Test func server_whenARegularFileIsInTheWay_refusesToStartAndLeavesIt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = FileManager.default.createFile(atPath: directory.socketPath, contents: Data("keep me".utf8))

        let server = ControlServer(socketPath: directory.socketPath, handler: RecordingHandler(), logger: quietLogger)
        await #expect(throws: ControlServerError.notASocket(path: directory.socketPath)) {
            try await server.run()
        }
        #expect(FileManager.default.contents(atPath: directory.socketPath) == Data("keep me".utf8))
    }

    @Test func server_whenCancelled_closesAndUnlinksTheSocket() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler())
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.socketPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o666)

        try await running.stop()

        #expect(!FileManager.default.fileExists(atPath: directory.socketPath))
    }

    @Test func server_onGracefulShutdownOfItsServiceGroup_stopsAndUnlinksTheSocket() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = ControlServer(socketPath: directory.socketPath, handler: RecordingHandler(), logger: quietLogger)
        let group = ServiceGroup(configuration: .init(services: [server], logger: quietLogger))
        let task = Task { try await group.run() }
        try await waitUntilListening(directory.socketPath)
        // A silent client mid-request must not hold the shutdown up.
        let silent = try RawSocket(connectingTo: directory.socketPath)
        defer { silent.close() }

        let started = Date()
        await group.triggerGracefulShutdown()
        try await task.value

        #expect(Date().timeIntervalSince(started) < 2)
        #expect(!FileManager.default.fileExists(atPath: directory.socketPath))
    }

    @Test func server_whenManyClientsAskAtOnce_answersEveryOne() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler)

        let answers = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 {
                group.addTask { try await send(ControlRequest(command: .processes), to: directory.socketPath).processes == .sample }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }

        #expect(answers == Array(repeating: true, count: 20))
        try await running.stop()
    }
}

/// Log records captured for inspection.
final class LogRecords: @unchecked Sendable {
    /// One captured record.
    struct Record { let message: String; let metadata: [String: String] }
    private let lock = NSLock()
    private var records: [Record] = []
    var all: [Record] { lock.withLock { records } }
    func append(_ record: Record) { lock.withLock { records.append(record) } }
}

/// A log handler appending every record to `records`.
struct RecordingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        records.append(.init(message: event.message.description, metadata: merged.mapValues { "\($0)" }))
    }
}
