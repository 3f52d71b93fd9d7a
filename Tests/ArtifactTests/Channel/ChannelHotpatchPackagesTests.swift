import Foundation
import Testing
@testable import Artifact

/// The `files` of a hotpatch release: the fixed Debian packages it carries to the disk. Parsing,
/// encoding, the refusal of anything but packages, and verification into the store.
@Suite struct ChannelHotpatchPackagesTests {
    static let packageBytes: [UInt8] = Array("!<arch>\ndebian-binary   a fixed package stand-in".utf8)

    static func package(_ path: String = "hotpatches/hp1/packages/libfoo1_1.2-2_amd64.deb",
                        bytes: [UInt8] = packageBytes) -> ChannelIndex.InstallFile {
        .init(kind: .deb, file: .init(path: path, sha256: ChannelKeys.sha256(bytes), length: UInt64(bytes.count)))
    }

    /// The fixture's index with hotpatch hp1 carrying `files`.
    static func index(_ fixture: ChannelFixture, files: [ChannelIndex.InstallFile]) -> ChannelIndex {
        var index = fixture.index
        index.releases = index.releases.map { release in
            guard case let .hotpatch(id, baseline, level, text, cves, targets, kernel, _) = release else { return release }
            return .hotpatch(id: id, baseline: baseline, level: level, description: text, cves: cves, targets: targets,
                             kernel: kernel, files: files)
        }
        return index
    }

    func refusal(_ text: String) -> ChannelRefusal? {
        do { _ = try ChannelIndex.parse(Array(text.utf8), path: "index.json"); return nil } catch { return error }
    }

    @Test func parse_ofHotpatchWithPackages_roundTripsAndListsThemAmongItsFiles() throws {
        let fixture = try ChannelFixture()
        let index = Self.index(fixture, files: [Self.package(), Self.package("hotpatches/hp1/packages/libfoo-bin_1.2-2_amd64.deb")])
        let parsed = try ChannelIndex.parse(index.encoded(), path: "index.json")
        #expect(parsed == index)
        #expect(parsed.encoded() == index.encoded())
        let hotpatch = parsed.releases[1]
        #expect(hotpatch.installFiles.map(\.file.path) == ["hotpatches/hp1/packages/libfoo1_1.2-2_amd64.deb",
                                                           "hotpatches/hp1/packages/libfoo-bin_1.2-2_amd64.deb"])
        #expect(hotpatch.loadedFileReferences.map(\.path) == ["hotpatches/hp1/fix.so"])
        #expect(hotpatch.fileReferences.count == 3)
        let text = String(decoding: index.encoded(), as: UTF8.self)
        #expect(text.contains(#""type": "deb""#))
    }

    @Test func encode_ofHotpatchWithoutPackages_writesNoFilesField_andParsesAsEmpty() throws {
        let fixture = try ChannelFixture()
        let text = fixture.indexText
        let hotpatch = try #require(text.range(of: #""kind": "hotpatch""#))
        let fix = try #require(text.range(of: #""kind": "fix""#))
        #expect(!text[hotpatch.upperBound..<fix.lowerBound].contains("\"files\""), "an older agent must keep reading it")
        let parsed = try ChannelIndex.parse(Array(text.utf8), path: "index.json")
        #expect(parsed.releases[1].installFiles.isEmpty)
    }

    @Test func parse_whenHotpatchCarriesAPlainFile_refusesNamingTheReleaseAndTheEntry() throws {
        let fixture = try ChannelFixture()
        let plain = ChannelIndex.InstallFile(kind: .file(destination: "/usr/lib/libfoo.so.1", mode: 0o644),
                                             file: Self.package("hotpatches/hp1/libfoo.so.1").file)
        let text = String(decoding: Self.index(fixture, files: [Self.package(), plain]).encoded(), as: UTF8.self)
        let refused = try #require(refusal(text))
        guard case let .invalidValue(path, field, reason) = refused else { Issue.record("\(refused)"); return }
        #expect(path == "index.json")
        #expect(field == "releases[1].files[1].type")
        #expect(reason.contains("hotpatch release hp1"), "\(reason)")
        #expect(reason.contains("only Debian packages"), "\(reason)")
        #expect(refused.description.contains("index.json"), "\(refused.description)")
    }

    @Test func parse_whenHotpatchFilesHoldAnUnknownType_refusesTheKind() throws {
        let fixture = try ChannelFixture()
        let text = String(decoding: Self.index(fixture, files: [Self.package()]).encoded(), as: UTF8.self)
            .replacingOccurrences(of: #""type": "deb""#, with: #""type": "rpm""#)
        #expect(refusal(text) == .unknownKind(path: "index.json", field: "releases[1].files[0].type", kind: "rpm"))
    }

    @Test func parse_whenAPackagePathLeavesTheChannel_refusesIt() throws {
        let fixture = try ChannelFixture()
        let text = String(decoding: Self.index(fixture, files: [Self.package("../elsewhere/libfoo1.deb")]).encoded(), as: UTF8.self)
        guard case .unsafePath? = refusal(text) else { Issue.record("not refused as unsafe: \(String(describing: refusal(text)))"); return }
    }

    @Test func parse_whenHotpatchHasPackagesButNoTargetsOrKernel_refusesIt() throws {
        let index = ChannelIndex(version: 1, expires: "2030-01-01T00:00:00Z", releases: [
            .baseline(id: "B1", planned: true, description: "", cves: [], files: []),
            .hotpatch(id: "hp1", baseline: "B1", level: 1, description: "", cves: [], targets: [], kernel: [], files: [Self.package()]),
        ])
        #expect(refusal(String(decoding: index.encoded(), as: UTF8.self))
                    == .invalidValue(path: "index.json", field: "releases[1].targets", reason: "is empty, and the release has no kernel entries"))
    }

    @Test func verify_copiesCarriedPackagesIntoThePrivateInstallsFolder_notAmongPatchObjects() throws {
        let fixture = try ChannelFixture()
        let entry = try fixture.write("hotpatches/hp1/packages/libfoo1_1.2-2_amd64.deb", Self.packageBytes)
        fixture.index = Self.index(fixture, files: [.init(kind: .deb, file: entry)])
        try fixture.publish()
        let verified = try fixture.verify()
        let release = try #require(verified.hotpatchReleases.first)
        #expect(release.packages.count == 1)
        let package = try #require(release.packages.first)
        #expect(package.kind == .deb)
        #expect(package.channelPath == "hotpatches/hp1/packages/libfoo1_1.2-2_amd64.deb")
        #expect(package.storePath.hasPrefix(fixture.store + "/installs/"), "\(package.storePath)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: package.storePath)) == Data(Self.packageBytes))
        #expect(release.hotpatch.targets.allSatisfy { $0.patchObjectPath.hasPrefix(fixture.store + "/objects/") })
        // Kept across restarts like every verified file.
        let kept = try #require(try fixture.verifier().verifyKept())
        #expect(kept.hotpatchReleases.first?.packages == release.packages)
    }

    @Test func verify_whenACarriedPackageWasChanged_refusesTheChannel() throws {
        let fixture = try ChannelFixture()
        let entry = try fixture.write("hotpatches/hp1/packages/libfoo1_1.2-2_amd64.deb", Self.packageBytes)
        fixture.index = Self.index(fixture, files: [.init(kind: .deb, file: entry)])
        try fixture.publish()
        var changed = Self.packageBytes
        changed[changed.count - 1] ^= 1
        try ChannelFixture.writeFile(fixture.channel + "/" + entry.path, changed)
        guard case .hashMismatch? = fixture.refusal() else {
            Issue.record("a changed package is not refused: \(String(describing: fixture.refusal()))")
            return
        }
    }
}
