import AgentCore
@testable import Artifact
import Foundation
import Glibc
import Testing

/// A release file whose verified copy holds `content`, written into the test's store.
private func plainFile(_ directory: TemporaryDirectory, store name: String, content: String, destination: String,
                       mode: UInt32 = 0o644) throws -> InstallableFile {
    let storePath = try directory.write("store/" + name, content)
    return InstallableFile(kind: .file(destination: destination, mode: mode), channelPath: "files/" + name, storePath: storePath,
                           sha256: ChannelKeys.sha256(Array(content.utf8)), length: UInt64(content.utf8.count))
}

private func debFile(_ path: String) -> InstallableFile {
    InstallableFile(kind: .deb, channelPath: "debs/x.deb", storePath: path, sha256: "", length: 0)
}

private func mode(of path: String) throws -> Int {
    try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
}

/// Builds a real .deb installing `/opt/<name>/hello` with `content`; extra control lines (e.g. Depends) may be given.
private func buildDeb(_ directory: TemporaryDirectory, name: String, version: String, content: String,
                      control extra: String = "") throws -> String {
    let tree = "pkg-\(name)-\(version)"
    try directory.write("\(tree)/opt/\(name)/hello", content)
    try directory.write("\(tree)/DEBIAN/control", """
        Package: \(name)
        Version: \(version)
        Architecture: all
        Maintainer: hotpatch-agent tests <root@localhost>
        Description: hotpatch-agent installer test package
        \(extra)
        """.trimmingCharacters(in: .whitespacesAndNewlines) + "\n")
    let output = directory.path + "/\(name)_\(version)_all.deb"
    let result = try Program.run("/usr/bin/dpkg-deb", ["--root-owner-group", "--build", directory.path + "/" + tree, output])
    #expect(result.status == 0, "\(result.output)")
    return output
}

private func installedVersion(_ name: String) throws -> String? {
    let result = try Program.run("/usr/bin/dpkg-query", ["-W", "-f=${db:Status-Status} ${Version}", name])
    return result.status == 0 && result.output.hasPrefix("installed ") ? String(result.output.dropFirst(10)) : nil
}

private func purge(_ name: String) {
    _ = try? Program.run("/usr/bin/dpkg", ["--purge", name])
    try? FileManager.default.removeItem(atPath: "/opt/\(name)")
}

@Test func install_plainFiles_replaceAtomicallyAndKeepThePreviousVersion() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let root = directory.path + "/root"
    try directory.write("root/etc/app/app.conf", "old\n")
    chmod(root + "/etc/app/app.conf", 0o640)
    let files = [
        try plainFile(directory, store: "a", content: "new\n", destination: "/etc/app/app.conf", mode: 0o600),
        try plainFile(directory, store: "b", content: "#!/bin/sh\n", destination: "/etc/app/helper", mode: 0o755),
    ]
    let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
    let result = try installer.install(files: files, releaseID: "base-2")
    #expect(result == InstallResult(releaseID: "base-2", installedDebs: [], installedFiles: ["/etc/app/app.conf", "/etc/app/helper"]))
    #expect(try directory.read("root/etc/app/app.conf") == "new\n")
    #expect(try mode(of: root + "/etc/app/app.conf") == 0o600)
    #expect(try mode(of: root + "/etc/app/helper") == 0o755)
    // Backups are keyed by the whole resolved path (here under the test's root).
    #expect(try directory.read("backup/base-2" + root + "/etc/app/app.conf") == "old\n")
    #expect(try mode(of: directory.path + "/backup/base-2" + root + "/etc/app/app.conf") == 0o640)
    #expect(!FileManager.default.fileExists(atPath: directory.path + "/backup/base-2" + root + "/etc/app/helper"))
    #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc/app").sorted() == ["app.conf", "helper"])
    #expect(installer.matchesDisk(files: files))
}

@Test func install_whenSecondFileFails_restoresTheFirstAndLeavesNoTemporaryFile() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let root = directory.path + "/root"
    try directory.write("root/etc/app/app.conf", "old\n")
    var broken = try plainFile(directory, store: "c", content: "x\n", destination: "/etc/app/other")
    broken.storePath = directory.path + "/store/vanished"  // the store copy disappears mid-install
    let files = [
        try plainFile(directory, store: "a", content: "new\n", destination: "/etc/app/app.conf"),
        try plainFile(directory, store: "b", content: "new file\n", destination: "/etc/app/added"),
        broken,
    ]
    let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
    do {
        _ = try installer.install(files: files, releaseID: "fix-1")
        Issue.record("install succeeded with a missing store copy")
    } catch let error as AgentCoreError {
        #expect(error.description == "Failed to install release fix-1: /etc/app/other: open failed for \(directory.path)/store/vanished: ENOENT (No such file or directory); restored 2 replaced files")
    }
    #expect(try directory.read("root/etc/app/app.conf") == "old\n")
    #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc/app") == ["app.conf"])
}

@Test func install_whenADestinationDirectoryIsMissing_changesNothing() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let root = directory.path + "/root"
    try directory.write("root/etc/app/app.conf", "old\n")
    let files = [
        try plainFile(directory, store: "a", content: "new\n", destination: "/etc/app/app.conf"),
        try plainFile(directory, store: "b", content: "x\n", destination: "/etc/missing/file"),
    ]
    let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
    #expect(throws: AgentCoreError.installFailed(
        releaseID: "fix-2", reason: "resolve failed for \(root)/etc/missing (on the way to \(root)/etc/missing/file): ENOENT (No such file or directory)",
        rollback: "nothing was changed")) {
        try installer.install(files: files, releaseID: "fix-2")
    }
    #expect(try directory.read("root/etc/app/app.conf") == "old\n")
}

@Test func matchesDisk_comparesDigestsAndTreatsNoFilesAsMatching() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let root = directory.path + "/root"
    try directory.write("root/etc/a", "same\n")
    try directory.write("root/etc/b", "drifted\n")
    let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
    let same = try plainFile(directory, store: "a", content: "same\n", destination: "/etc/a")
    #expect(installer.matchesDisk(files: []))
    #expect(installer.matchesDisk(files: [same]))
    #expect(!installer.matchesDisk(files: [same, try plainFile(directory, store: "b", content: "expected\n", destination: "/etc/b")]))
    #expect(!installer.matchesDisk(files: [try plainFile(directory, store: "c", content: "x\n", destination: "/etc/absent")]))
}

/// Real packages through the host's dpkg: one at a time, since dpkg takes a lock.
@Suite(.serialized, .enabled(if: getuid() == 0, "installs real packages with dpkg, as root"))
struct DpkgInstallTests {
    @Test func install_debianPackage_goesThroughDpkgAndIsThenOnDisk() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let name = "hotpatch-test-" + UUID().uuidString.prefix(8).lowercased()
        defer { purge(name) }
        let deb = try buildDeb(directory, name: name, version: "1.0-1", content: "hello\n")
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: directory.path + "/root")
        #expect(!installer.matchesDisk(files: [debFile(deb)]))
        let result = try installer.install(files: [debFile(deb)], releaseID: "base-3")
        #expect(result.installedDebs == ["\(name)=1.0-1"])
        #expect(try installedVersion(name) == "1.0-1")
        #expect(try String(contentsOfFile: "/opt/\(name)/hello", encoding: .utf8) == "hello\n")
        #expect(installer.matchesDisk(files: [debFile(deb)]))
        let newer = try buildDeb(directory, name: name, version: "1.0-2", content: "hello again\n")
        #expect(!installer.matchesDisk(files: [debFile(newer)]))
    }

    @Test func install_whenDpkgFails_restoresPlainFilesAndNamesThePackageDpkgLeftChanged() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let name = "hotpatch-test-" + UUID().uuidString.prefix(8).lowercased()
        defer { purge(name) }
        let deb = try buildDeb(directory, name: name, version: "2.0-1", content: "hello\n",
                               control: "Depends: hotpatch-test-missing-dependency-\(name)")
        let root = directory.path + "/root"
        try directory.write("root/etc/app.conf", "old\n")
        let files = [try plainFile(directory, store: "a", content: "new\n", destination: "/etc/app.conf"), debFile(deb)]
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: root)
        do {
            _ = try installer.install(files: files, releaseID: "fix-3")
            Issue.record("dpkg accepted a package with a missing dependency")
        } catch let error as AgentCoreError {
            let text = error.description
            #expect(text.hasPrefix("Failed to install release fix-3: dpkg --install exited with status 1: "))
            #expect(text.contains("hotpatch-test-missing-dependency-\(name)"))
            #expect(text.contains("restored 1 replaced file; dpkg changes are not rolled back: \(name) not installed → unpacked 2.0-1"))
        }
        #expect(try directory.read("root/etc/app.conf") == "old\n")
    }

    @Test func installCarried_installsANewerPackage_andLeavesOneAlreadyAtThatVersionOrNewerAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let name = "hotpatch-test-" + UUID().uuidString.prefix(8).lowercased()
        defer { purge(name) }
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: directory.path + "/root")
        let first = try buildDeb(directory, name: name, version: "1.0-1", content: "vulnerable\n")
        _ = try installer.install(files: [debFile(first)], releaseID: "baseline")
        let fixed = try buildDeb(directory, name: name, version: "1.0-1+deb12u1", content: "fixed\n")
        #expect(try installer.installCarried(packages: [debFile(fixed)], releaseID: "hp2")
                    == [.init(name: name, architecture: "all", version: "1.0-1+deb12u1", action: .installed, previousVersion: "1.0-1")])
        #expect(try installedVersion(name) == "1.0-1+deb12u1")
        #expect(try String(contentsOfFile: "/opt/\(name)/hello", encoding: .utf8) == "fixed\n")

        // An older carried version, or the same one, is never installed over what is there.
        for (version, release) in [("1.0-1", "hp3"), ("1.0-1+deb12u1", "hp4")] {
            let carried = try buildDeb(directory, name: name, version: version, content: "carried \(version)\n")
            #expect(try installer.installCarried(packages: [debFile(carried)], releaseID: release)
                        == [.init(name: name, architecture: "all", version: version, action: .alreadyCurrent,
                                  previousVersion: "1.0-1+deb12u1")])
        }
        #expect(try installedVersion(name) == "1.0-1+deb12u1")
        #expect(try String(contentsOfFile: "/opt/\(name)/hello", encoding: .utf8) == "fixed\n")
    }

    @Test func installCarried_whenThePackageIsNotInstalledOnTheHost_leavesItAloneAndSaysSo() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let name = "hotpatch-test-" + UUID().uuidString.prefix(8).lowercased()
        defer { purge(name) }
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: directory.path + "/root")
        let carried = try buildDeb(directory, name: name, version: "1.0-1+deb12u1", content: "fixed\n")
        #expect(try installer.installCarried(packages: [debFile(carried)], releaseID: "hp1")
                    == [.init(name: name, architecture: "all", version: "1.0-1+deb12u1", action: .notInstalled, previousVersion: nil)])
        #expect(try installedVersion(name) == nil)
        #expect(!FileManager.default.fileExists(atPath: "/opt/\(name)/hello"))
    }

    @Test func installCarried_whenDpkgFails_throwsItsReasonNamingTheRelease() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let name = "hotpatch-test-" + UUID().uuidString.prefix(8).lowercased()
        defer { purge(name) }
        let deb = try buildDeb(directory, name: name, version: "2.0-1", content: "hello\n",
                               control: "Depends: hotpatch-test-missing-dependency-\(name)")
        let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: directory.path + "/root")
        let previous = try buildDeb(directory, name: name, version: "1.0-1", content: "vulnerable\n")
        _ = try installer.install(files: [debFile(previous)], releaseID: "baseline")
        do {
            _ = try installer.installCarried(packages: [debFile(deb)], releaseID: "hp9")
            Issue.record("dpkg accepted a package with a missing dependency")
        } catch let error as AgentCoreError {
            #expect(error.description.hasPrefix("Failed to install release hp9: dpkg --install exited with status 1: "), "\(error)")
            #expect(error.description.contains("hotpatch-test-missing-dependency-\(name)"), "\(error)")
        }
    }
}

@Test func install_whenDebIsNotAPackage_changesNothing() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let garbage = try directory.write("store/x.deb", "not a deb")
    try directory.write("root/etc/app.conf", "old\n")
    let files = [try plainFile(directory, store: "a", content: "new\n", destination: "/etc/app.conf"), debFile(garbage)]
    let installer = ReleaseInstaller(backupDirectory: directory.path + "/backup", root: directory.path + "/root")
    do {
        _ = try installer.install(files: files, releaseID: "fix-4")
        Issue.record("installed a garbage package")
    } catch let error as AgentCoreError {
        #expect(error.description.hasPrefix("Failed to install release fix-4: dpkg-deb --show \(garbage) failed"))
        #expect(error.description.hasSuffix("; nothing was changed"))
    }
    #expect(try directory.read("root/etc/app.conf") == "old\n")
}
