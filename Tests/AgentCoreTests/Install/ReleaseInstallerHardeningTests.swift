import AgentCore
@testable import Artifact
import Foundation
import Glibc
import Testing

/// A plain file of a release whose verified store copy holds `content`.
private func storeFile(_ directory: TemporaryDirectory, _ name: String, _ content: String, destination: String,
                       mode: UInt32 = 0o644) throws -> InstallableFile {
    let storePath = try directory.write("store/" + name, content)
    return InstallableFile(kind: .file(destination: destination, mode: mode), channelPath: "files/" + name, storePath: storePath,
                           sha256: ChannelKeys.sha256(Array(content.utf8)), length: UInt64(content.utf8.count))
}

/// Issue 14, finding 4 (duplicate destinations, long names, errors with their path) and 9
/// (no write through what another user controls), on the installer itself.
@Suite struct ReleaseInstallerHardeningTests {
    private func modeBits(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
    }

    @Test func install_whenTwoFilesShareADestination_refusesBeforeChangingAnything() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        try directory.write("root/etc/app.conf", "original\n")
        let files = [
            try storeFile(directory, "a", "first\n", destination: "/etc/app.conf"),
            try storeFile(directory, "b", "second\n", destination: "/etc/app.conf"),
        ]
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        do {
            _ = try installer.install(files: files, releaseID: "B2")
            Issue.record("a release installing one file twice was accepted")
        } catch let error as AgentCoreError {
            #expect(error.description.contains("/etc/app.conf"))
            #expect(error.description.hasSuffix("; nothing was changed"))
        }
        #expect(try directory.read("root/etc/app.conf") == "original\n")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/backup"))
    }

    @Test func install_whenTwoDestinationsNameOneFileThroughALink_refusesThem() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        try directory.write("root/usr/lib/libdemo.so.1", "original\n")
        #expect(symlink("usr/lib", root + "/lib") == 0)
        let files = [
            try storeFile(directory, "a", "first\n", destination: "/lib/libdemo.so.1"),
            try storeFile(directory, "b", "second\n", destination: "/usr/lib/libdemo.so.1"),
        ]
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        #expect(throws: AgentCoreError.self) { try installer.install(files: files, releaseID: "B2") }
        #expect(try directory.read("root/usr/lib/libdemo.so.1") == "original\n")
    }

    @Test func install_whenTheThirdFileFails_restoresBothEarlierFilesToTheirOwnContent() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        try directory.write("root/usr/lib/a.conf", "original a\n")
        try directory.write("root/usr/lib/b.conf", "original b\n")
        #expect(symlink("usr/lib", root + "/lib") == 0)
        var broken = try storeFile(directory, "c", "c\n", destination: "/usr/lib/c.conf")
        broken.storePath = directory.path + "/store/vanished"
        let files = [
            try storeFile(directory, "a", "new a\n", destination: "/lib/a.conf"),
            try storeFile(directory, "b", "new b\n", destination: "/usr/lib/b.conf"),
            broken,
        ]
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        do {
            _ = try installer.install(files: files, releaseID: "B3")
            Issue.record("install succeeded with a missing store copy")
        } catch let error as AgentCoreError {
            #expect(error.description.contains("/usr/lib/c.conf"))
            #expect(error.description.contains(directory.path + "/store/vanished"))
            #expect(error.description.hasSuffix("restored 2 replaced files"))
        }
        #expect(try directory.read("root/usr/lib/a.conf") == "original a\n")
        #expect(try directory.read("root/usr/lib/b.conf") == "original b\n")
        // One backup per real file, under its resolved path.
        #expect(try directory.read("backup/B3" + root + "/usr/lib/a.conf") == "original a\n")
        #expect(try directory.read("backup/B3" + root + "/usr/lib/b.conf") == "original b\n")
    }

    @Test(arguments: [236, 240, 250, 255])
    func install_ofADestinationNameOfUpTo255Bytes_replacesItAndRollsBack(length: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        let name = "é" + String(repeating: "n", count: length - 2)  // a two-byte scalar first: bytes, not characters, count
        #expect(name.utf8.count == length)
        try directory.write("root/etc/" + name, "old\n")
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        let result = try installer.install(files: [try storeFile(directory, "a", "new\n", destination: "/etc/" + name)], releaseID: "B4")
        #expect(result.installedFiles == ["/etc/" + name])
        #expect(try directory.read("root/etc/" + name) == "new\n")
        #expect(try directory.read("backup/B4" + root + "/etc/" + name) == "old\n")

        var broken = try storeFile(directory, "b", "b\n", destination: "/etc/zz")
        broken.storePath = directory.path + "/store/vanished"
        #expect(throws: AgentCoreError.self) {
            try installer.install(files: [try storeFile(directory, "c", "newer\n", destination: "/etc/" + name), broken], releaseID: "B5")
        }
        #expect(try directory.read("root/etc/" + name) == "new\n", "rolled back to what was there before B5")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc") == [name], "no temporary file is left")
    }

    @Test func install_ofAPrivateFile_keepsItsModeAndKeepsBackupsInA0700Folder() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        try directory.write("root/etc/secret.key", "old secret\n")
        chmod(root + "/etc/secret.key", 0o600)
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        _ = try installer.install(files: [try storeFile(directory, "a", "new secret\n", destination: "/etc/secret.key", mode: 0o600)],
                                  releaseID: "B6")
        #expect(try modeBits(root + "/etc/secret.key") == 0o600)
        #expect(try modeBits(directory.path + "/backup/B6" + root + "/etc/secret.key") == 0o600)
        #expect(try modeBits(directory.path + "/backup") == 0o700)
    }

    @Test(.enabled(if: geteuid() == 0)) func install_throughADirectoryOwnedByNobody_isRefusedNamingThePath() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        try directory.write("root/protected/app.conf", "root's\n")
        try FileManager.default.createDirectory(atPath: root + "/shared", withIntermediateDirectories: true)
        #expect(chown(root + "/shared", 65534, 65534) == 0)
        // nobody points its link at a directory only root may write.
        #expect(symlink("../protected", root + "/shared/app") == 0)
        #expect(lchown(root + "/shared/app", 65534, 65534) == 0)
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        do {
            _ = try installer.install(files: [try storeFile(directory, "a", "attacker's choice\n", destination: "/shared/app/app.conf")],
                                      releaseID: "B7")
            Issue.record("wrote through a directory nobody owns")
        } catch let error as AgentCoreError {
            #expect(error.description.contains("Refusing to write \(root)/shared/app/app.conf: \(root)/shared is a directory owned by uid 65534"))
            #expect(error.description.hasSuffix("; nothing was changed"))
        }
        #expect(try directory.read("root/protected/app.conf") == "root's\n")
    }
}

/// The wider class of finding 9: whatever sits at a destination, the installer replaces only a
/// regular file, never writes through a link or into a FIFO or device, and never copies from one.
@Suite struct ReleaseInstallerDestinationKindTests {
    @Test(arguments: ["symlink", "fifo", "directory"])
    func install_whenTheDestinationIsNotARegularFile_refusesAndLeavesItAsItWas(kind: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.path + "/root"
        try directory.write("root/etc/target", "root's own\n")
        let destination = root + "/etc/app.conf"
        switch kind {
        case "symlink": #expect(symlink(root + "/etc/target", destination) == 0)
        case "fifo": #expect(mkfifo(destination, 0o644) == 0)
        default: try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: false)
        }
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        do {
            _ = try installer.install(files: [try storeFile(directory, "a", "new\n", destination: "/etc/app.conf")], releaseID: "B8")
            Issue.record("replaced a \(kind)")
        } catch let error as AgentCoreError {
            #expect(error.description.contains(destination + " (not a regular file"), "\(error)")
            #expect(error.description.hasSuffix("; nothing was changed"))
        }
        #expect(try directory.read("root/etc/target") == "root's own\n")
        var info = stat()
        #expect(lstat(destination, &info) == 0)
        #expect(info.st_mode & S_IFMT == [ "symlink": S_IFLNK, "fifo": S_IFIFO, "directory": S_IFDIR ][kind])
    }
}
