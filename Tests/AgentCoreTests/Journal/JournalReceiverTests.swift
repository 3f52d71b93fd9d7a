@testable import AgentCore
import Glibc
import LinuxSystem
import Logging
import Testing

/// Decodes journald's native datagram protocol: `NAME=value\n`, or for binary-safe values
/// `NAME\n`, a 64-bit little-endian length, the bytes and `\n`.
func parseNativeJournalDatagram(_ bytes: [UInt8]) -> [(name: String, value: String)] {
    var fields: [(String, String)] = []
    var index = 0
    while index < bytes.count {
        guard let newline = bytes[index...].firstIndex(of: 0x0A) else { break }
        let line = bytes[index..<newline]
        if let equals = line.firstIndex(of: UInt8(ascii: "=")) {
            fields.append((String(decoding: line[..<equals], as: UTF8.self), String(decoding: line[(equals + 1)...], as: UTF8.self)))
            index = newline + 1
        } else {
            let name = String(decoding: line, as: UTF8.self)
            var length: UInt64 = 0
            for (shift, byte) in bytes[(newline + 1)..<(newline + 9)].enumerated() { length |= UInt64(byte) << (8 * shift) }
            let start = newline + 9
            let end = start + Int(length)
            fields.append((name, String(decoding: bytes[start..<end], as: UTF8.self)))
            index = end + 1  // the trailing newline
        }
    }
    return fields
}

/// Runs `body` on a new OS thread that has its own mount namespace, then lets the thread end.
///
/// libsystemd always sends to `/run/systemd/journal/socket`, and this host has no journald. A
/// mount namespace is per thread (unshare(2) changes only the calling task), so a dedicated thread
/// can mount a tmpfs over `/run/systemd`, bind its own receiver there and send through the real
/// `sd_journal_sendv`, with no effect on the host or on the other tests' threads. Swift cannot fork
/// safely, and a helper executable would need a Package.swift change; a thread needs neither.
func inPrivateMountNamespace<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        do {
            try Threads.startDetached {
                continuation.resume(with: Result {
                    // unshare and mount are not exported by the Glibc module (they need
                    // _GNU_SOURCE); look them up in libc instead of widening the shim for a test.
                    typealias Unshare = @convention(c) (Int32) -> Int32
                    typealias Mount = @convention(c) (
                        UnsafePointer<CChar>?, UnsafePointer<CChar>, UnsafePointer<CChar>?, UInt, UnsafeRawPointer?
                    ) -> Int32
                    guard let unsharePointer = dlsym(nil, "unshare"), let mountPointer = dlsym(nil, "mount") else {
                        throw FixtureError.setUp("unshare/mount not found")
                    }
                    let unshare = unsafeBitCast(unsharePointer, to: Unshare.self)
                    let mount = unsafeBitCast(mountPointer, to: Mount.self)
                    let cloneNewNS: Int32 = 0x0002_0000
                    let msRec: UInt = 16384, msPrivate: UInt = 1 << 18
                    guard unshare(cloneNewNS) == 0 else { throw FixtureError.setUp("unshare: errno \(errno)") }
                    // Private first, so the tmpfs below never propagates back to the host.
                    guard mount(nil, "/", nil, msRec | msPrivate, nil) == 0 else {
                        throw FixtureError.setUp("make / private: errno \(errno)")
                    }
                    guard mount("tmpfs", "/run/systemd", "tmpfs", 0, nil) == 0 else {
                        throw FixtureError.setUp("mount tmpfs on /run/systemd: errno \(errno)")
                    }
                    return try body()
                })
            }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

@Suite struct JournalReceiverTests {
    @Test func handlerSendsNativeFieldsThatAJournalSocketReceives() async throws {
        let datagrams = try await inPrivateMountNamespace { () -> [[UInt8]] in
            mkdir("/run/systemd/journal", 0o755)
            let receiver = try DatagramReceiver(path: LogBackend.journalSocketPath)
            var logger = Logger(label: "test") { JournalLogHandler(label: $0, metadataProvider: nil) }
            logger.logLevel = .debug
            logger[metadataKey: "baseline.id"] = "base-2"
            logger.log(
                event: .quarantined, "Quarantined hotpatch after a crash",
                metadata: ["hotpatch.id": "hp-7", "target.pid": "4242", "reason": "SIGSEGV 80 ms after patch",
                           "cve": ["CVE-2024-1", "CVE-2024-2"], "odd key": "x"])
            // A newline in a value makes libsystemd switch to the binary-safe encoding.
            logger.info("Line one\nline two", metadata: ["event": "checked"])
            return [receiver.receive(), receiver.receive()].compactMap { $0 }
        }
        try #require(datagrams.count == 2)
        let first = parseNativeJournalDatagram(datagrams[0])
        func values(_ name: String, _ fields: [(name: String, value: String)]) -> [String] {
            fields.filter { $0.name == name }.map(\.value)
        }
        #expect(values("MESSAGE", first) == ["Quarantined hotpatch after a crash"])
        #expect(values("MESSAGE_ID", first) == [JournalEvent.quarantined.messageID])
        #expect(values("PRIORITY", first) == ["3"])
        #expect(values("SYSLOG_IDENTIFIER", first) == ["hotpatch-agent"])
        #expect(values("HOTPATCH_ID", first) == ["hp-7"])
        #expect(values("BASELINE_ID", first) == ["base-2"])
        #expect(values("TARGET_PID", first) == ["4242"])
        #expect(values("REASON", first) == ["SIGSEGV 80 ms after patch"])
        #expect(values("CVE", first) == ["CVE-2024-1", "CVE-2024-2"])
        #expect(values("ODD_KEY", first) == ["x"])
        #expect(values("CODE_FILE", first).first?.hasSuffix("JournalReceiverTests.swift") == true)
        #expect(!values("CODE_LINE", first).isEmpty && !values("CODE_FUNC", first).isEmpty)

        let second = parseNativeJournalDatagram(datagrams[1])
        #expect(values("MESSAGE", second) == ["Line one\nline two"])
        #expect(values("MESSAGE_ID", second) == [JournalEvent.checked.messageID])
        #expect(values("PRIORITY", second) == ["6"])
    }

    @Test func aSocketBoundInThePrivateNamespaceIsInvisibleToTheRestOfTheProcess() async throws {
        // Guards the isolation claim above: the private tmpfs never leaks onto the host.
        let path = "/run/systemd/hotpatch-agent-test-\(getpid())"
        let seenInside = try await inPrivateMountNamespace { () -> Bool in
            let receiver = try DatagramReceiver(path: path)
            return withExtendedLifetime(receiver) { access(path, F_OK) == 0 }
        }
        #expect(seenInside)
        #expect(access(path, F_OK) != 0)
    }
}
