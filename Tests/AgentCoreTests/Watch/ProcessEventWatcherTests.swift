@testable import AgentCore
import Foundation
import Glibc
import LinuxSystem
import Testing

/// Records every event with its arrival time, so an event that arrives before the test knows the
/// pid (posix_spawn returns only after the child's exec) is not lost.
private final class EventRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [(ProcessEvent, ContinuousClock.Instant)] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<ProcessEvent>) {
        task = Task { [weak self] in
            for await event in stream {
                let arrived = ContinuousClock.now
                guard let self else { return }
                self.lock.withLock { self.events.append((event, arrived)) }
            }
        }
    }

    /// The first recorded event matching `predicate`, waiting up to `timeout` for it.
    func first(within timeout: Duration, where predicate: (ProcessEvent) -> Bool) async -> (ProcessEvent, ContinuousClock.Instant)? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let match = lock.withLock({ events.first { predicate($0.0) } }) { return match }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }

    deinit { task?.cancel() }
}

@Suite struct WatchProcessEventTests {
    @Test func netlinkIsAvailableAsRootWithCapNetAdmin() {
        let watcher = ProcessEventWatcher()
        #expect(watcher.mode == .netlink)
    }

    /// The kernel sends a subscription's acknowledgement to every socket in the group: a socket
    /// that merely joined (as one in a container does: its own request is ignored there) sees the
    /// acknowledgement of another listener's request, and must not take it for its own.
    @Test func anotherListenersAcknowledgementReachesEverySocketButIsNotTheirs() throws {
        let fd = try Socket.netlinkDatagram(protocol: ProcConnector.netlinkConnector, subject: "a test listener")
        defer { Descriptor.close(fd) }
        try Socket.bindNetlink(fd, groups: ProcConnector.idxProc, subject: "a test listener")

        let other = ProcessEventWatcher()
        try #require(other.mode == .netlink)
        defer { other.stop() }

        let ours = ProcConnector.RequestTag.random()
        var seen: [ProcConnector.Message] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline, !seen.contains(where: { if case .acknowledgement = $0 { true } else { false } }) {
            guard try Descriptor.waitReadable([fd], timeoutMilliseconds: 100, subject: "a test listener")[0] else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 { seen += buffer.withUnsafeBytes { ProcConnector.parse(UnsafeRawBufferPointer(rebasing: $0[..<count])) } }
        }
        let acknowledgements = seen.filter { if case .acknowledgement = $0 { true } else { false } }
        #expect(!acknowledgements.isEmpty, "the other listener's acknowledgement did not reach this socket")
        #expect(!acknowledgements.contains { $0.acknowledges(ours) })
    }

    @Test func execOfSleepIsSeenWithin100MillisecondsWithItsPid() async throws {
        let watcher = ProcessEventWatcher()
        try #require(watcher.mode == .netlink)
        var latencies: [Duration] = []
        let recorder = EventRecorder(watcher.events())
        for _ in 0..<5 {
            let start = ContinuousClock.now
            let pid = try ChildProcess.spawn("/bin/sleep", ["0.2"])
            let result = await recorder.first(within: .seconds(2)) { $0 == .exec(pid: pid) }
            _ = ChildProcess.waitForExit(pid)
            let (event, arrived) = try #require(result, "no exec event for \(pid)")
            #expect(event == .exec(pid: pid))
            latencies.append(arrived - start)
        }
        latencies.sort()
        print("exec→event latency (posix_spawn start → event delivered to the stream), 5 runs: min \(latencies.first!), median \(latencies[2]), max \(latencies.last!)")
        #expect(latencies[2] < .milliseconds(100))
    }

    @Test func childKilledBySIGSEGVIsReportedWithSignal11() async throws {
        let watcher = ProcessEventWatcher()
        try #require(watcher.mode == .netlink)
        let recorder = EventRecorder(watcher.events())
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", "kill -SEGV $$"])
        let result = await recorder.first(within: .seconds(3)) {
            if case .exit(pid, _, _) = $0 { true } else { false }
        }
        _ = ChildProcess.waitForExit(pid)
        let (event, _) = try #require(result)
        #expect(event == .exit(pid: pid, exitCode: 0, signal: SIGSEGV))
    }

    @Test func normalExitWithCode3ReportsCode3AndNoSignal() async throws {
        let watcher = ProcessEventWatcher()
        try #require(watcher.mode == .netlink)
        let recorder = EventRecorder(watcher.events())
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", "exit 3"])
        let result = await recorder.first(within: .seconds(3)) {
            if case .exit(pid, _, _) = $0 { true } else { false }
        }
        _ = ChildProcess.waitForExit(pid)
        let (event, _) = try #require(result)
        #expect(event == .exit(pid: pid, exitCode: 3, signal: nil))
    }

    @Test func withoutTheConnectorTheWatcherFallsBackToScanningAndSaysWhy() async {
        // Netlink protocol 31 does not exist: socket(2) fails with EPROTONOSUPPORT, as it does on a
        // kernel without the proc connector.
        let watcher = ProcessEventWatcher(netlinkProtocol: 31)
        guard case .scan(let reason) = watcher.mode else {
            Issue.record("expected scan mode, got \(watcher.mode)")
            return
        }
        #expect(reason.contains("netlink"))
        var iterator = watcher.events().makeAsyncIterator()
        #expect(await iterator.next() == nil)
    }

    @Test func stopEndsTheStream() async {
        let watcher = ProcessEventWatcher()
        let stream = watcher.events()
        watcher.stop()
        var iterator = stream.makeAsyncIterator()
        while let _ = await iterator.next() {}  // Events already queued drain, then it ends.
    }
}

@Suite struct WatchProcConnectorParsingTests {
    /// One connector message: nlmsghdr + cn_msg + proc_event with the given union words.
    private func message(what: UInt32, words: [UInt32], idx: UInt32 = 1, sequence: UInt32 = 0, ack: UInt32 = 0) -> [UInt8] {
        var event: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
            withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        }
        append(what, to: &event)
        append(UInt32(0), to: &event)  // cpu
        append(UInt64(123), to: &event)  // timestamp_ns
        for word in words { append(word, to: &event) }
        var bytes: [UInt8] = []
        append(UInt32(36 + event.count), to: &bytes)
        append(UInt16(3), to: &bytes)  // NLMSG_DONE
        append(UInt16(0), to: &bytes)
        append(UInt32(0), to: &bytes)
        append(UInt32(0), to: &bytes)
        append(idx, to: &bytes)
        append(UInt32(1), to: &bytes)
        append(sequence, to: &bytes)
        append(ack, to: &bytes)
        append(UInt16(event.count), to: &bytes)
        append(UInt16(0), to: &bytes)
        return bytes + event
    }

    private func parse(_ bytes: [UInt8]) -> [ProcConnector.Message] {
        bytes.withUnsafeBytes { ProcConnector.parse($0) }
    }

    @Test func severalMessagesInOneDatagramAreAllDecoded() {
        let datagram = message(what: 2, words: [100, 100])
            + message(what: 0x8000_0000, words: [200, 200, 3 << 8, 17, 1, 1])
            + message(what: 0x8000_0000, words: [300, 300, 0x8b, 17, 1, 1])
        #expect(parse(datagram) == [
            .event(.exec(pid: ProcessID(100))),
            .event(.exit(pid: ProcessID(200), exitCode: 3, signal: nil)),
            // 0x8b: SIGSEGV (11) with the core-dump flag.
            .event(.exit(pid: ProcessID(300), exitCode: 0, signal: 11)),
        ])
    }

    @Test func threadsThatAreNotGroupLeadersAreSkipped() {
        let datagram = message(what: 2, words: [101, 100]) + message(what: 0x8000_0000, words: [102, 100, 0, 17, 1, 1])
        #expect(parse(datagram).isEmpty)
    }

    @Test func subscriptionAcknowledgementCarriesTheErrnoAndTheAck() {
        #expect(parse(message(what: 0, words: [0], sequence: 7, ack: 10)) == [.acknowledgement(errno: 0, ack: 10)])
        #expect(parse(message(what: 0, words: [UInt32(EPERM)], sequence: 7, ack: 10)) == [.acknowledgement(errno: EPERM, ack: 10)])
    }

    @Test func anAcknowledgementIsOursOnlyWhenItCarriesOurAckPlusOne() {
        let ours = ProcConnector.RequestTag(ack: 9)
        // The kernel replaces seq with a per-CPU counter: it does not matter.
        #expect(parse(message(what: 0, words: [0], sequence: 4711, ack: 10))[0].acknowledges(ours))
        // Another listener's (the kernel sends every acknowledgement to the whole group).
        #expect(!parse(message(what: 0, words: [0], sequence: 7, ack: 1))[0].acknowledges(ours))
        #expect(!parse(message(what: 0, words: [0], sequence: 7, ack: 9))[0].acknowledges(ours))
        // The wrap-around of ack + 1.
        let last = ProcConnector.RequestTag(ack: .max)
        #expect(parse(message(what: 0, words: [0], sequence: 1, ack: 0))[0].acknowledges(last))
        #expect(!ProcConnector.Message.event(.exec(pid: ProcessID(1))).acknowledges(ours))
    }

    @Test func otherConnectorsOtherEventsAndTruncatedTailsAreIgnored() {
        let fork = message(what: 1, words: [1, 1, 2, 2])
        let otherConnector = message(what: 2, words: [5, 5], idx: 7)
        let truncated = Array(message(what: 2, words: [9, 9]).prefix(30))
        #expect(parse(fork + otherConnector + message(what: 2, words: [6, 6]) + truncated) == [.event(.exec(pid: ProcessID(6)))])
    }

    @Test func subscribeMessageMatchesTheKernelLayout() {
        let bytes = ProcConnector.controlMessage(ProcConnector.mcastListen, tag: .init(ack: 0x0102_0304))
        #expect(bytes.count == 40)
        #expect(bytes[0] == 40 && bytes[4] == 3)  // nlmsg_len, NLMSG_DONE
        #expect(bytes[16] == 1 && bytes[20] == 1)  // CN_IDX_PROC, CN_VAL_PROC
        #expect(Array(bytes[28..<32]) == [4, 3, 2, 1])  // ack, host order
        #expect(bytes[32] == 4 && bytes[36] == 1)  // data length, PROC_CN_MCAST_LISTEN
    }
}
