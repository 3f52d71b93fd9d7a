import Foundation
import Glibc
@testable import LinuxSystem
import TestSupport
import Testing

@Suite struct InotifyTests {
    @Test func aFileCreatedInAWatchedDirectoryIsAnEvent() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let instance = try Inotify.create()
        defer { Descriptor.close(instance) }
        let watch = try Inotify.addWatch(instance, path: scratch.path, mask: UInt32(IN_CREATE))
        #expect(watch >= 0)
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Non-blocking: nothing yet.
        #expect(try Descriptor.read(instance, into: &buffer, subject: "inotify") == nil)
        try scratch.write("new", bytes: [1])
        #expect(try Descriptor.waitReadable([instance], timeoutMilliseconds: 5000, subject: "inotify") == [true])
        let count = try #require(try Descriptor.read(instance, into: &buffer, subject: "inotify"))
        #expect(count >= 16)
        // struct inotify_event: int wd @0, uint32 mask @4.
        #expect(buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 0, as: Int32.self) } == watch)
        #expect(buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) } & UInt32(IN_CREATE) != 0)
    }

    @Test func watchingAMissingDirectoryIsENOENTNamingIt() throws {
        let instance = try Inotify.create()
        defer { Descriptor.close(instance) }
        #expect(throws: SystemError(call: "inotify_add_watch", errno: ENOENT, subject: "/nonexistent/linuxsystem-test")) {
            try Inotify.addWatch(instance, path: "/nonexistent/linuxsystem-test", mask: UInt32(IN_CREATE))
        }
    }
}

@Suite struct ChildProcessTests {
    @Test func aProgramsOutputsAndExitStatusAreCollectedApart() throws {
        let finished = try ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(finished.status == 3)
        #expect(finished.output == Array("out\n".utf8))
        #expect(finished.errorOutput == Array("err\n".utf8))
    }

    @Test func aProgramStillRunningAtItsTimeoutIsKilled() throws {
        let finished = try ChildProcess.run("/bin/sleep", ["30"], timeoutSeconds: 0.2)
        #expect(finished.status == 128 + SIGKILL)
    }

    @Test func aProgramThatCannotStartIsASystemError() {
        #expect(throws: SystemError(call: "posix_spawn", errno: ENOENT, subject: "/nonexistent/program")) {
            try ChildProcess.run("/nonexistent/program", [])
        }
    }
}
