import AgentProtocol
import Foundation
import Glibc
import Testing

/// `ControlClient`'s errors when the other end misbehaves or may not be reached.
@Suite struct ControlClientTests {
    @Test func client_whenNobodyAnswersInTime_reportsATimeout() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let listener = try FakeAgent(at: directory.socketPath, answer: nil)
        defer { listener.close() }

        let outcome = await blocking {
            Result<ControlResponse, ControlClientError> { () throws(ControlClientError) in try ControlClient(socketPath: directory.socketPath, timeoutSeconds: 0.3).send(ControlRequest(command: .status)) }
        }

        #expect(throws: ControlClientError.timedOut(path: directory.socketPath, seconds: 0.3)) { try outcome.get() }
        #expect(ControlClientError.timedOut(path: "/s", seconds: 0.3).description.contains("did not answer within 0.3 s"))
    }

    @Test func client_whenTheAnswerIsNotAControlResponse_reportsAMalformedAnswer() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let listener = try FakeAgent(at: directory.socketPath, answer: "hello\n")
        defer { listener.close() }

        let outcome = await blocking {
            Result<ControlResponse, ControlClientError> { () throws(ControlClientError) in try ControlClient(socketPath: directory.socketPath, timeoutSeconds: 5).send(ControlRequest(command: .status)) }
        }

        guard case .failure(.malformedAnswer(let path, let detail)) = outcome else {
            Issue.record("expected a malformed answer, got \(outcome)")
            return
        }
        #expect(path == directory.socketPath)
        #expect(detail.hasPrefix("not JSON"))
    }


    @Test func controlClient_withAnEmptyPath_saysItIsEmpty() throws {
        #expect(throws: ControlClientError.socketPathEmpty) {
            try ControlClient(socketPath: "", timeoutSeconds: 1).send(ControlRequest(command: .status))
        }
        #expect(ControlClientError.socketPathEmpty.description == "cannot reach hotpatch-agent: the socket path is empty")
    }

    @Test func controlClient_whenTheAgentsQueueOfNewConnectionsStaysFull_saysItIsBusy() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let listener = try FakeAgent(at: directory.socketPath, answer: nil)
        defer { listener.close() }
        // Fill the listen queue: non-blocking connects succeed until it is full.
        var queued: [Int32] = []
        defer { queued.forEach { _ = Glibc.close($0) } }
        while queued.count < 100 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(directory.socketPath.utf8) + [0]) }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard result == 0 else { _ = Glibc.close(fd); break }
            queued.append(fd)
        }
        #expect(queued.count < 100, "the queue never filled")

        let outcome = await blocking {
            Result<ControlResponse, ControlClientError> { () throws(ControlClientError) in
                try ControlClient(socketPath: directory.socketPath, timeoutSeconds: 0.3).send(ControlRequest(command: .status))
            }
        }

        #expect(throws: ControlClientError.queueFull(path: directory.socketPath, seconds: 0.3)) { try outcome.get() }
        #expect(ControlClientError.queueFull(path: "/s", seconds: 0.3).description
            == "hotpatch-agent at /s is busy: its queue of new connections stayed full for 0.3 s; try again later")
    }
}

/// A listening socket that accepts one connection and answers `answer` (or nothing, when nil).
final class FakeAgent: @unchecked Sendable {
    private let fd: Int32

    init(at path: String, answer: String?) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else { throw TestHandlerFailure(description: "cannot listen at \(path)") }
        guard let answer else { return }  // Never accepts: the client waits in the backlog.
        let listener = fd
        Thread {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            _ = buffer.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            _ = Array(answer.utf8).withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            Glibc.close(connection)
        }.start()
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}
