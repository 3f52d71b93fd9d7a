import Foundation
import Glibc
@testable import LinuxSystem
import Testing

@Suite struct FilesTests {
    @Test func anOpenFileReadsAtAnOffsetWholeAndInChunks() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let path = try scratch.write("data", bytes)
        let file = try OpenFile(path: path, flags: O_RDONLY)
        #expect(try file.read(at: 10, count: 5) == Array(bytes[10..<15]))
        #expect(try file.read(at: 99_998, count: 10) == Array(bytes[99_998...]))
        #expect(try file.readAll(limit: bytes.count) == bytes)
        #expect(try file.status().st_size == bytes.count)
    }

    @Test func readingMoreThanTheLimitIsRefusedWithEFBIG() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = try scratch.write("big", [UInt8](repeating: 1, count: 4097))
        #expect(throws: SystemError(call: "read", errno: EFBIG, subject: "\(path) (larger than 4096 bytes)")) {
            try Files.read(path, limit: 4096)
        }
        #expect(try Files.read(path, limit: 4097).count == 4097)
    }

    @Test func aMissingFileIsNilForTheIfPresentForms() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        #expect(try Files.readIfPresent(scratch.path + "/missing") == nil)
        #expect(try Files.linkStatusIfPresent(scratch.path + "/missing") == nil)
        try Files.removeIfPresent(scratch.path + "/missing")
        #expect(throws: SystemError(call: "unlink", errno: ENOENT, subject: scratch.path + "/missing")) {
            try Files.remove(scratch.path + "/missing")
        }
    }

    @Test func anAtomicWriteHasExactlyItsModeAndLeavesNoTemporaryFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/state.json"
        let previous = umask(0o077)
        defer { umask(previous) }
        try Files.writeAtomically(path, bytes: Array("new".utf8), mode: 0o644)
        #expect(try Files.read(path) == Array("new".utf8))
        #expect(try Files.linkStatus(path).st_mode & 0o7777 == 0o644)
        #expect(try Files.list(scratch.path) == ["state.json"])
    }

    @Test func aCopyRefusesASymbolicLinkAsItsSource() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let target = try scratch.write("target", Array("secret".utf8))
        #expect(symlink(target, scratch.path + "/link") == 0)
        #expect(throws: SystemError(call: "open", errno: ELOOP, subject: scratch.path + "/link")) {
            try Files.copyAtomically(from: scratch.path + "/link", to: scratch.path + "/copy", mode: 0o600)
        }
        try Files.copyAtomically(from: target, to: scratch.path + "/copy", mode: 0o600)
        #expect(try Files.read(scratch.path + "/copy") == Array("secret".utf8))
    }

    @Test func makingDirectoriesOverAFileIsENOTDIRAndOverADirectoryIsFine() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        try Files.makeDirectories(scratch.path + "/a/b/c", mode: 0o700)
        try Files.makeDirectories(scratch.path + "/a/b/c", mode: 0o700)
        #expect(try Files.linkStatus(scratch.path + "/a/b").st_mode & S_IFMT == S_IFDIR)
        try scratch.write("file", [1])
        #expect(throws: SystemError(call: "mkdir", errno: ENOTDIR, subject: scratch.path + "/file")) {
            try Files.makeDirectories(scratch.path + "/file", mode: 0o700)
        }
    }

    @Test func anExclusiveCreateNeverReplacesAFile() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/key"
        try Files.createExclusively(path, bytes: [1, 2], mode: 0o600)
        #expect(throws: SystemError(call: "open", errno: EEXIST, subject: path)) {
            try Files.createExclusively(path, bytes: [3], mode: 0o600)
        }
        #expect(try Files.read(path) == [1, 2])
    }

    @Test func pathsSplitIntoDirectoryAndName() {
        #expect(Files.directoryName("/var/lib/x/") == "/var/lib")
        #expect(Files.directoryName("/x") == "/")
        #expect(Files.directoryName("x") == ".")
        #expect(Files.baseName("/var/lib/x/") == "x")
        #expect(Files.temporaryPrefix(for: "/a/state.json") == ".state.json.tmp-")
    }
}
