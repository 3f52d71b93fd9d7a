import AgentCore
import AgentProtocol
import Foundation
import Logging
import Testing

/// The control server's connection limits against real hostile clients running as other users: each
/// user gets a few connections, root always gets through, and refusals are summarised in the log.
@Suite(.serialized) struct ControlServerLimitsTests {
    @Test func server_whenOneUserHoldsManyConnections_admitsOnlyItsShareAndAnswersTheRestBusy() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A long request timeout: the held connections must not be dropped for silence meanwhile.
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(), requestTimeoutSeconds: 60)

        let hostile = try await blocking { Result { try HostileControlClient(socket: directory.socketPath, count: 10) } }.get()
        // Root is not counted with that user; and once root is answered, every refusal has been sent.
        #expect(try await send(ControlRequest(command: .status), to: directory.socketPath).ok)
        let burst = try await blocking { Result { try hostile.burst() } }.get()

        #expect(burst.held == 4)
        #expect(burst.refused == 6)
        let refusal = try JSONDecoder().decode(ControlResponse.self, from: Data(burst.firstAnswer.utf8))
        #expect(refusal.error == "agent busy: uid 65534 already has 4 control connections open; try again")
        #expect(refusal.isBusy)
        _ = try await blocking { Result { try hostile.stop() } }.get()
        try await running.stop()
    }

    @Test func server_whenManyUsersFillTheUnprivilegedShare_rootStillGetsThrough() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(), requestTimeoutSeconds: 60)

        // Eight users take four connections each: 32, the whole cap, were it not for root's share.
        var hostiles: [HostileControlClient] = []
        for uid in UInt32(65527)...65534 {
            hostiles.append(try await blocking { Result { try HostileControlClient(socket: directory.socketPath, count: 4, uid: uid) } }.get())
        }
        defer { hostiles.forEach { _ = try? $0.stop() } }

        let answers = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 { group.addTask { try await send(ControlRequest(command: .status), to: directory.socketPath).ok } }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(answers == [true, true, true, true])
        var bursts: [HostileControlClient.Burst] = []
        for hostile in hostiles { bursts.append(try await blocking { Result { try hostile.burst() } }.get()) }
        #expect(bursts.map(\.held).reduce(0, +) == 32 - 8)
        let turnedAway = try #require(bursts.first { $0.refused > 0 })
        #expect(try JSONDecoder().decode(ControlResponse.self, from: Data(turnedAway.firstAnswer.utf8)).error
            == "agent busy: 24 control connections of other users than root already open; try again")
        try await running.stop()
    }

    @Test func server_whenAUserFloodsConnections_logsASummaryInsteadOfAWarningEach() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let records = LogRecords()
        let logger = Logger(label: "control-test", factory: { _ in RecordingLogHandler(records: records) })
        let running = try await RunningServer.start(at: directory.socketPath, handler: RecordingHandler(), logger: logger,
                                                    requestTimeoutSeconds: 60)

        let hostile = try await blocking { Result { try HostileControlClient(socket: directory.socketPath, count: 200) } }.get()
        #expect(try await send(ControlRequest(command: .status), to: directory.socketPath).ok)
        #expect(try await blocking { Result { try hostile.burst() } }.get().refused == 196)
        try await running.stop()
        _ = try await blocking { Result { try hostile.stop() } }.get()

        // Stopping flushes what was still being counted.
        let summaries = records.all.filter { $0.message.contains("control connection") }
        #expect(summaries.count <= 2, "\(summaries.map(\.message))")
        #expect(summaries.compactMap { Int($0.metadata["control.refused"] ?? "") }.reduce(0, +) == 196)
        #expect(summaries.allSatisfy { $0.metadata["control.refused.uids"] == "65534" })
    }

    @Test func server_whenAUserFloodsPrivilegedRequests_logsTheFirstInFullThenSummaries() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let records = LogRecords()
        let logger = Logger(label: "control-test", factory: { _ in RecordingLogHandler(records: records) })
        let handler = RecordingHandler()
        let running = try await RunningServer.start(at: directory.socketPath, handler: handler, logger: logger)

        let hostile = try await blocking {
            Result { try HostileControlClient(socket: directory.socketPath, count: 4, reconnect: true, request: "{\"command\":\"unenroll\"}") }
        }.get()
        _ = try await blocking { Result { try hostile.burst() } }.get()
        try await Task.sleep(for: .seconds(2))
        let sent = try await blocking { Result { try hostile.stop() } }.get()
        try await running.stop()

        #expect(await handler.calls.isEmpty)
        let refusals = records.all.filter { $0.message.hasPrefix("Refused privileged control request") }
        #expect(sent > 20, "the client sent only \(sent) requests")
        #expect(refusals.count <= 2, "\(sent) refused requests made \(refusals.count) log lines")
        let first = try #require(refusals.first)
        #expect(first.metadata["control.command"] == "unenroll")
        #expect(first.metadata["control.peer.uid"] == "65534")
        #expect(refusals.compactMap { Int($0.metadata["control.refused"] ?? "") }.reduce(0, +) > 20)
        #expect(refusals.allSatisfy { $0.metadata["control.refused.uids"] == "65534" })
    }
}
