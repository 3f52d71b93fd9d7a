import Foundation
import Glibc
@testable import LinuxSystem
import TestSupport
import Testing

@Suite struct FilesTests {
    /// The process's umask, from /proc/self/status (reading it with umask(2) would set it, for
    /// every test running meanwhile).
    static func processUmask() throws -> mode_t {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Umask:") })
        return try #require(mode_t(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8))
    }

    @Test func anOpenFileReadsAtAnOffsetWholeAndInChunks() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let path = try scratch.write("data", bytes: bytes)
        let file = try OpenFile(path: path, flags: O_RDONLY)
        #expect(try file.read(at: 10, count: 5) == Array(bytes[10..<15]))
        #expect(try file.read(at: 99_998, count: 10) == Array(bytes[99_998...]))
        #expect(try file.readAll(limit: bytes.count) == bytes)
        #expect(try file.status().st_size == bytes.count)
    }

    @Test func readingMoreThanTheLimitIsRefusedWithEFBIG() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = try scratch.write("big", bytes: [UInt8](repeating: 1, count: 4097))
        #expect(throws: SystemError(call: "read", errno: EFBIG, subject: "\(path) (larger than 4096 bytes)")) {
            try Files.read(path, limit: 4096)
        }
        #expect(try Files.read(path, limit: 4097).count == 4097)
    }

    @Test func readAll_whenTheFileHasNoSizeLikeAProcFile_growsPastItsFirstBufferAndStillHonoursTheLimit() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let fifo = scratch.path + "/stream"
        #expect(mkfifo(fifo, 0o600) == 0)
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        func feed(_ count: Int) -> Thread {
            let writer = Thread {
                let descriptor = open(fifo, O_WRONLY)
                _ = bytes.prefix(count).withUnsafeBytes { write(descriptor, $0.baseAddress!, count) }
                close(descriptor)
            }
            writer.start()
            return writer
        }
        _ = feed(bytes.count)
        #expect(try Files.read(fifo, limit: 1 << 20) == bytes)
        _ = feed(5000)
        #expect(throws: SystemError(call: "read", errno: EFBIG, subject: "\(fifo) (larger than 4096 bytes)")) {
            try Files.read(fifo, limit: 4096)
        }
    }

    @Test func readAll_ofAProcFileLargerThanTheFirstBuffer_readsItWhole() throws {
        // This test process maps dozens of objects: its smaps runs to tens of KiB, with no size in stat.
        let smaps = try Files.read("/proc/self/smaps", limit: 64 << 20)
        #expect(smaps.count > 16 * 1024)
        #expect(smaps.last == UInt8(ascii: "\n"))
        let text = String(decoding: smaps, as: UTF8.self)
        #expect(text.hasSuffix("\n") && text.components(separatedBy: "VmFlags:").count > 10)
    }

    @Test func readRecord_ofAProcessesStatusStatAndCgroup_givesWhatAReadToTheEndGives() throws {
        // Each is printed whole by one show: a read short of the buffer has it all.
        for name in ["status", "stat", "cgroup"] {
            let path = "/proc/self/\(name)"
            let record = try Files.readRecord(path, limit: 1 << 20)
            let whole = try Files.read(path, limit: 1 << 20)
            #expect(!record.isEmpty && record.last == UInt8(ascii: "\n"), "\(path)")
            // The counters may move between two reads (other tests run meanwhile): the status's and
            // cgroup's lines are compared by name, stat's one line by its pid and field count.
            let shape = { (bytes: [UInt8]) -> [String] in
                String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { line in
                    name == "stat" ? "\(line.prefix { $0 != " " }) \(line.split(separator: " ").count)" : String(line.prefix { $0 != ":" })
                }
            }
            #expect(shape(record) == shape(whole), "\(path)")
        }
    }

    @Test func readRecord_ofAFileLongerThanItsFirstBuffer_stillReadsItWholeWithinTheLimit() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let bytes = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        let path = try scratch.write("data", bytes: bytes)
        #expect(try Files.readRecord(path, limit: 1 << 20) == bytes)
        #expect(throws: SystemError(call: "read", errno: EFBIG, subject: "\(path) (larger than 4096 bytes)")) {
            try Files.readRecord(path, limit: 4096)
        }
    }

    @Test func readAll_afterAnEarlierRead_returnsTheRestOfARegularFile() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let bytes = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        let file = try OpenFile(path: try scratch.write("data", bytes: bytes), flags: O_RDONLY)
        var first = [UInt8](repeating: 0, count: 10)
        #expect(try file.read(into: &first) == 10)
        #expect(try file.readAll(limit: bytes.count) == Array(bytes[10...]))
        #expect(try file.readAll(limit: bytes.count) == [])
    }

    @Test func aMissingFileIsNilForTheIfPresentForms() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        #expect(try Files.readIfPresent(scratch.path + "/missing") == nil)
        #expect(try Files.linkStatusIfPresent(scratch.path + "/missing") == nil)
        try Files.removeIfPresent(scratch.path + "/missing")
        #expect(throws: SystemError(call: "unlink", errno: ENOENT, subject: scratch.path + "/missing")) {
            try Files.remove(scratch.path + "/missing")
        }
    }

    @Test func anAtomicWriteHasExactlyItsModeAndLeavesNoTemporaryFile() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = scratch.path + "/state.json"
        // The process's umask is left alone (tests run in parallel in one process, and a umask of
        // 077 made another test's directories 0700): a mode with every bit the umask filters.
        let filtered = try FilesTests.processUmask()
        try #require(filtered != 0, "the umask filters nothing: the test cannot tell")
        let mode = 0o666 | filtered & 0o777
        try Files.writeAtomically(path, bytes: Array("new".utf8), mode: mode)
        #expect(try Files.read(path) == Array("new".utf8))
        #expect(try Files.linkStatus(path).st_mode & 0o7777 == mode)
        #expect(try Files.list(scratch.path) == ["state.json"])
    }

    @Test func aCopyRefusesASymbolicLinkAsItsSource() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let target = try scratch.write("target", bytes: Array("secret".utf8))
        #expect(symlink(target, scratch.path + "/link") == 0)
        #expect(throws: SystemError(call: "open", errno: ELOOP, subject: scratch.path + "/link")) {
            try Files.copyAtomically(from: scratch.path + "/link", to: scratch.path + "/copy", mode: 0o600)
        }
        try Files.copyAtomically(from: target, to: scratch.path + "/copy", mode: 0o600)
        #expect(try Files.read(scratch.path + "/copy") == Array("secret".utf8))
    }

    @Test func makingDirectoriesOverAFileIsENOTDIRAndOverADirectoryIsFine() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        try Files.makeDirectories(scratch.path + "/a/b/c", mode: 0o700)
        try Files.makeDirectories(scratch.path + "/a/b/c", mode: 0o700)
        #expect(try Files.linkStatus(scratch.path + "/a/b").st_mode & S_IFMT == S_IFDIR)
        try scratch.write("file", bytes: [1])
        #expect(throws: SystemError(call: "mkdir", errno: ENOTDIR, subject: scratch.path + "/file")) {
            try Files.makeDirectories(scratch.path + "/file", mode: 0o700)
        }
    }

    @Test func anExclusiveCreateNeverReplacesAFile() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let path = scratch.path + "/key"
        try Files.createExclusively(path, bytes: [1, 2], mode: 0o600)
        #expect(throws: SystemError(call: "open", errno: EEXIST, subject: path)) {
            try Files.createExclusively(path, bytes: [3], mode: 0o600)
        }
        #expect(try Files.read(path) == [1, 2])
    }

    @Test func makingADirectoryIfAbsentLeavesWhatIsThereAndNeedsItsParent() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        try Files.makeDirectoryIfAbsent(scratch.path + "/store", mode: 0o750 & ~(try FilesTests.processUmask()))
        #expect(try Files.linkStatus(scratch.path + "/store").st_mode & 0o7777 == 0o750 & ~(try FilesTests.processUmask()))
        try Files.setMode(scratch.path + "/store", 0o700)
        try Files.makeDirectoryIfAbsent(scratch.path + "/store", mode: 0o755)
        #expect(try Files.linkStatus(scratch.path + "/store").st_mode & 0o7777 == 0o700)
        let file = try scratch.write("file", bytes: [1])
        try Files.makeDirectoryIfAbsent(file, mode: 0o755)
        #expect(try Files.linkStatus(file).st_mode & S_IFMT == S_IFREG)
        #expect(throws: SystemError(call: "mkdir", errno: ENOENT, subject: scratch.path + "/missing/store")) {
            try Files.makeDirectoryIfAbsent(scratch.path + "/missing/store", mode: 0o755)
        }
    }

    @Test func aNameInAnOpenFolderIsDescribedWithoutFollowingALink() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let target = try scratch.write("key", bytes: [1, 2, 3])
        #expect(symlink(target, scratch.path + "/link") == 0)
        let folder = try OpenFile(path: scratch.path, flags: O_RDONLY | O_DIRECTORY)
        let key = try folder.linkStatus(of: "key", path: target)
        #expect(key.st_mode & S_IFMT == S_IFREG)
        #expect(key.st_size == 3)
        #expect(try folder.linkStatus(of: "link", path: scratch.path + "/link").st_mode & S_IFMT == S_IFLNK)
        #expect(throws: SystemError(call: "fstatat", errno: ENOENT, subject: scratch.path + "/gone")) {
            try folder.linkStatus(of: "gone", path: scratch.path + "/gone")
        }
    }

    @Test func readingToFillABufferStopsOnlyWhenItIsFullOrTheFileEnds() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        // A pipe returns what one write put in it, so a single read(2) would stop short.
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let (readEnd, writeEnd) = (ends[0], ends[1])
        let reader = try OpenFile(path: "/dev/fd/\(readEnd)", flags: O_RDONLY)
        Glibc.close(readEnd)
        let writer = Thread {
            for chunk in 0..<4 {
                var bytes = [UInt8](repeating: UInt8(chunk), count: 10)
                _ = Glibc.write(writeEnd, &bytes, bytes.count)
                usleep(2_000)
            }
            Glibc.close(writeEnd)
        }
        writer.start()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 25, alignment: 1)
        defer { buffer.deallocate() }
        #expect(try reader.read(filling: buffer) == 25)
        #expect(Array(buffer) == [UInt8](repeating: 0, count: 10) + [UInt8](repeating: 1, count: 10) + [UInt8](repeating: 2, count: 5))
        #expect(try reader.read(filling: buffer) == 15)
        #expect(try reader.read(filling: buffer) == 0)

        let path = try scratch.write("data", bytes: [7, 8, 9])
        let file = try OpenFile(path: path, flags: O_RDONLY)
        #expect(try file.read(filling: buffer) == 3)
        #expect(Array(buffer[0..<3]) == [7, 8, 9])
    }

    @Test func pathsSplitIntoDirectoryAndName() {
        #expect(Files.directoryName("/var/lib/x/") == "/var/lib")
        #expect(Files.directoryName("/x") == "/")
        #expect(Files.directoryName("x") == ".")
        #expect(Files.baseName("/var/lib/x/") == "x")
        #expect(Files.temporaryPrefix(for: "/a/state.json") == ".state.json.tmp-")
    }
}
