import Foundation
import Glibc
@testable import LinuxSystem
import TestSupport
import Testing

/// fanotify on real files, opened by real child processes. Needs CAP_SYS_ADMIN (the tests run as root).
@Suite struct FanotifyTests {
    /// Every event `fd` delivers within `milliseconds` (read until a quiet poll).
    private func collect(_ fd: Int32, milliseconds: Int32) throws -> [Fanotify.Event] {
        var events: [Fanotify.Event] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while try Descriptor.waitReadable([fd], timeoutMilliseconds: milliseconds, subject: "fanotify")[0] {
            events += try Fanotify.readEvents(fd, into: &buffer) ?? []
        }
        return events
    }

    /// Runs `/bin/cat path` to the end and returns its pid.
    private func cat(_ path: String) throws -> ProcessID {
        let pid = try ChildProcess.spawn("/bin/cat", [path], standardOutput: .null)
        #expect(ChildProcess.waitForExit(pid) == 0)
        return pid
    }

    /// How many of this process's descriptors are open on `path` (other tests running at the same
    /// time open descriptors of their own, so only this file's are counted).
    private func openDescriptors(on path: String) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) == path }.count
    }

    @Test func aMarkedFileOpenedByAChildIsAnOpenEventWithTheChildsPid() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = try scratch.write("library.so", "not really a library\n")
        let fd = try Fanotify.create()
        defer { Descriptor.close(fd) }
        try Fanotify.mark(fd, path: path, events: .open)
        var buffer = [UInt8](repeating: 0, count: 4096)
        #expect(try Fanotify.readEvents(fd, into: &buffer) == nil, "non-blocking: nothing yet")

        let child = try cat(path)
        let events = try collect(fd, milliseconds: 500)
        #expect(events.contains(Fanotify.Event(events: .open, pid: child)), "\(events)")
        #expect(!events.contains { $0.events.contains(.overflow) })
    }

    @Test func theDescriptorsTheKernelOpensForEventsAreClosedAfterReading() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = try scratch.write("library.so", "bytes\n")
        let fd = try Fanotify.create()
        defer { Descriptor.close(fd) }
        try Fanotify.mark(fd, path: path, events: [.open])
        for _ in 0..<20 { _ = try cat(path) }
        #expect(try collect(fd, milliseconds: 500).count >= 1)
        #expect(openDescriptors(on: path) == 0)
    }

    @Test func aFileIDInstanceReportsTheOpenersPid_andTheKernelOpensNoDescriptorForIt() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = try scratch.write("library.so", "bytes\n")
        let fd = try Fanotify.create(reporting: .fileIDs)
        defer { Descriptor.close(fd) }
        try Fanotify.mark(fd, path: path, events: .open)
        let children = try (0..<5).map { _ in try cat(path) }
        let events = try collect(fd, milliseconds: 500)
        // Each record is a fixed part followed by a file handle: parsed by its length, never an overflow.
        #expect(!events.contains { $0.events.contains(.overflow) }, "\(events)")
        for child in children { #expect(events.contains(Fanotify.Event(events: .open, pid: child)), "\(events)") }
        #expect(openDescriptors(on: path) == 0)
    }

    @Test func theErrorsOfAFilesystemWithoutHandles_areTheOnesADescriptorInstanceStillWatches() {
        // Linux 6.18 encodes a handle on every filesystem of this machine (proc, sysfs, tmpfs
        // included), so the kernel's refusals are checked as the kernel documents them.
        for errno in [EOPNOTSUPP, EXDEV, ENODEV] {
            #expect(Fanotify.fileIDsUnsupported(SystemError(call: "fanotify_mark", errno: errno, subject: "f")))
        }
        for errno in [ENOENT, EACCES, ENOSPC, EPERM] {
            #expect(!Fanotify.fileIDsUnsupported(SystemError(call: "fanotify_mark", errno: errno, subject: "f")))
        }
    }

    @Test func anUnmarkedFileInTheSameDirectoryIsNoEvent() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let marked = try scratch.write("marked.so", "a\n")
        let other = try scratch.write("other.so", "b\n")
        let fd = try Fanotify.create()
        defer { Descriptor.close(fd) }
        try Fanotify.mark(fd, path: marked, events: .open)
        let unrelated = try cat(other)
        let related = try cat(marked)
        let events = try collect(fd, milliseconds: 500)
        #expect(events.contains { $0.pid == related }, "the marked file's opener is reported: \(events)")
        #expect(!events.contains { $0.pid == unrelated }, "\(events)")
    }

    @Test func aMarkThroughASymbolicLinkIsOnTheFileItLeadsTo() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let real = try scratch.write("libreal.so.1", "a\n")
        let link = scratch.file("libreal.so")
        #expect(symlink(real, link) == 0)
        let fd = try Fanotify.create()
        defer { Descriptor.close(fd) }
        try Fanotify.mark(fd, path: link, events: [.open])
        let child = try cat(real)
        #expect(try collect(fd, milliseconds: 500).contains { $0.pid == child })
    }

    @Test func afterRemovingAllMarksOpensAreNoLongerReported() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = try scratch.write("library.so", "a\n")
        let fd = try Fanotify.create()
        defer { Descriptor.close(fd) }
        try Fanotify.mark(fd, path: path, events: [.open])
        try Fanotify.removeAllMarks(fd)
        _ = try cat(path)
        #expect(try collect(fd, milliseconds: 300).isEmpty)
        try Fanotify.mark(fd, path: path, events: [.open])
        let child = try cat(path)
        #expect(try collect(fd, milliseconds: 500).contains { $0.pid == child }, "marking again works")
    }

    @Test func markingAMissingFileIsENOENTNamingIt() throws {
        let fd = try Fanotify.create()
        defer { Descriptor.close(fd) }
        #expect(throws: SystemError(call: "fanotify_mark", errno: ENOENT, subject: "/nonexistent/linuxsystem-test.so")) {
            try Fanotify.mark(fd, path: "/nonexistent/linuxsystem-test.so", events: [.open])
        }
    }
}

@Suite struct FanotifyParsingTests {
    /// One fanotify_event_metadata record.
    private func record(mask: UInt64, fd: Int32, pid: Int32, version: UInt8 = 3, length: UInt32 = 24) -> [UInt8] {
        var bytes: [UInt8] = []
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
        append(length)
        append(version)
        append(UInt8(0))
        append(UInt16(24))
        append(mask)
        append(fd)
        append(pid)
        return bytes
    }

    private func parse(_ bytes: [UInt8]) -> (events: [Fanotify.Event], descriptors: [Int32]) {
        bytes.withUnsafeBytes { Fanotify.parse($0) }
    }

    @Test func recordsGiveTheirEventsPidsAndTheDescriptorsToClose() {
        let parsed = parse(record(mask: 0x20, fd: 7, pid: 100) + record(mask: 0x20, fd: 8, pid: 200))
        #expect(parsed.events == [Fanotify.Event(events: .open, pid: ProcessID(100)), Fanotify.Event(events: .open, pid: ProcessID(200))])
        #expect(parsed.descriptors == [7, 8])
    }

    @Test func anOverflowCarriesNoDescriptorAndNoPid() {
        let parsed = parse(record(mask: 0x4000, fd: -1, pid: 0))
        #expect(parsed.events == [Fanotify.Event(events: .overflow, pid: nil)])
        #expect(parsed.descriptors.isEmpty)
    }

    @Test func aRecordOfAnotherVersionOrATruncatedTailEndsInAnOverflow() {
        // What follows a record this parser cannot read is unknown: the caller must rescan.
        let otherVersion = parse(record(mask: 0x20, fd: 7, pid: 100) + record(mask: 0x20, fd: 9, pid: 300, version: 4))
        #expect(otherVersion.events == [Fanotify.Event(events: .open, pid: ProcessID(100)), Fanotify.Event(events: .overflow, pid: nil)])
        #expect(otherVersion.descriptors == [7])
        let truncated = parse(record(mask: 0x20, fd: 7, pid: 100) + Array(record(mask: 0x20, fd: 9, pid: 300).prefix(10)))
        #expect(truncated.events.last == Fanotify.Event(events: .overflow, pid: nil))
        let tooLong = parse(record(mask: 0x20, fd: 7, pid: 100, length: 48))
        #expect(tooLong.events == [Fanotify.Event(events: .overflow, pid: nil)])
    }
}
