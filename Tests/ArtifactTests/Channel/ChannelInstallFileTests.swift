import Foundation
import Glibc
import Testing
@testable import Artifact

/// Issue 14, findings 4 and 5 at the channel: one destination per release, and a baseline or fix
/// file's mode kept in the store while patch objects stay loadable by every user.
@Suite struct ChannelInstallFileTests {
    private func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
    }

    @Test func parse_whenTwoFilesOfAReleaseShareADestination_refusesNamingBoth() throws {
        let fixture = try ChannelFixture()
        let second = try fixture.write("fixes/fix1/tool2", Array("other\n".utf8))
        guard case let .fix(id, baseline, text, cves, files) = fixture.index.releases[2] else { Issue.record("fixture changed"); return }
        fixture.index.releases[2] = .fix(id: id, baseline: baseline, description: text, cves: cves,
                                         files: files + [.init(kind: .file(destination: "/usr/local/bin/tool", mode: 0o755), file: second)])
        try fixture.publish()
        #expect(fixture.refusal() == .invalidDestination(
            path: fixture.channel + "/index.json", destination: "/usr/local/bin/tool",
            reason: "is the destination of both releases[2].files[0] and releases[2].files[1]"))
    }

    @Test func parse_whenTwoReleasesInstallOneDestination_accepts() throws {
        let fixture = try ChannelFixture()
        let file = try fixture.write("baselines/B2/tool", Array("b2\n".utf8))
        fixture.index.releases.append(.baseline(id: "B2", planned: true, description: "", cves: [],
                                                files: [.init(kind: .file(destination: "/usr/local/bin/tool", mode: 0o755), file: file)]))
        try fixture.publish()
        #expect(fixture.refusal() == nil)
    }

    @Test func verify_storesA0600FileAs0600InA0700FolderAndPatchObjectsAs0444() throws {
        let fixture = try ChannelFixture()
        let secret = try fixture.write("baselines/B2/secret.key", Array("private\n".utf8))
        chmod(fixture.channel + "/baselines/B2/secret.key", 0o600)
        fixture.index.releases.append(.baseline(id: "B2", planned: true, description: "", cves: [],
                                                files: [.init(kind: .file(destination: "/etc/app/secret.key", mode: 0o600), file: secret)]))
        try fixture.publish()
        let verified = try fixture.verify()
        let stored = try #require(verified.baselines.last?.files.first?.storePath)
        #expect(stored.hasPrefix(fixture.store + "/installs/"))
        #expect(try mode(stored) == 0o600)
        #expect(try mode(fixture.store + "/installs") == 0o700)
        let object = try #require(verified.hotpatches.first?.targets.first?.patchObjectPath)
        #expect(object.hasPrefix(fixture.store + "/objects/"))
        #expect(try mode(object) == 0o444)
        #expect(try mode(fixture.store + "/objects") == 0o755)
        #expect(try mode(fixture.store) == 0o755)
    }

    @Test func verify_whenAStoreCopyHasTheWrongMode_replacesIt() throws {
        let fixture = try ChannelFixture()
        let first = try fixture.verify()
        let tool = try #require(first.fixes.first?.files.first?.storePath)
        chmod(tool, 0o666)
        chmod(fixture.store + "/installs", 0o755)
        let second = try fixture.verify()
        #expect(second.fixes.first?.files.first?.storePath == tool)
        #expect(try mode(tool) == 0o755)
        #expect(try mode(fixture.store + "/installs") == 0o700)
    }
}

extension ChannelInstallFileTests {
    @Test func verify_removesTheWorldReadableCopyAnOlderAgentMadeOfAnInstallFile_butKeepsPatchObjects() throws {
        let fixture = try ChannelFixture()
        _ = try fixture.verify()
        // What an older agent left: the fix's file as a 0444 object beside the patch object.
        guard case let .fix(_, _, _, _, files) = fixture.index.releases[2] else { Issue.record("fixture changed"); return }
        let reference = files[0].file
        let stale = fixture.store + "/objects/" + reference.sha256
        try Data(fixture.fixFileBytes).write(to: URL(fileURLWithPath: stale))
        chmod(stale, 0o444)
        let verified = try fixture.verify()
        #expect(!FileManager.default.fileExists(atPath: stale))
        let object = try #require(verified.hotpatches.first?.targets.first?.patchObjectPath)
        #expect(FileManager.default.fileExists(atPath: object))
    }
}
