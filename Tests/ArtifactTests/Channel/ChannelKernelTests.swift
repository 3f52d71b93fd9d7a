import Foundation
import Testing
@testable import Artifact

/// The `kernel` array of hotpatch releases: parsing, encoding, refusals and verification.
@Suite struct ChannelKernelTests {
    static let kernelA = BuildID(hex: "a3e4cd60a8ec14f02aa41b41d5b5846d3d9f1dd8")!
    static let kernelB = BuildID(hex: "0badc0de0badc0de0badc0de0badc0de0badc0de")!
    static let moduleBytes: [UInt8] = Array("\u{7f}ELF a live patch module stand-in".utf8)

    static func entry(_ build: BuildID = kernelA, name: String = "livepatch_l1", path: String = "hotpatches/k1/livepatch_l1.ko",
                      bytes: [UInt8] = moduleBytes, release: String = "6.1.0-57-amd64") -> ChannelIndex.KernelModule {
        ChannelIndex.KernelModule(release: release, buildID: build, livepatch: name,
                                  module: .init(path: path, sha256: ChannelKeys.sha256(bytes), length: UInt64(bytes.count)))
    }

    static func index(_ kernel: [[ChannelIndex.KernelModule]], targets: [ChannelIndex.Target] = []) -> ChannelIndex {
        ChannelIndex(version: 1, expires: "2030-01-01T00:00:00Z", releases: [
            .baseline(id: "B1", planned: true, description: "", cves: [], files: []),
        ] + kernel.enumerated().map { level, modules in
            .hotpatch(id: "k\(level + 1)", baseline: "B1", level: level + 1, description: "", cves: [],
                      targets: level == 0 ? targets : [], kernel: modules)
        })
    }

    func refusal(_ index: ChannelIndex) -> ChannelRefusal? {
        do { _ = try ChannelIndex.parse(index.encoded(), path: "index.json"); return nil } catch { return error }
    }

    func refusal(editing old: String, _ new: String, in index: ChannelIndex) -> ChannelRefusal? {
        let text = String(decoding: index.encoded(), as: UTF8.self)
        #expect(text.contains(old), "index lacks \(old)")
        do { _ = try ChannelIndex.parse(Array(text.replacingOccurrences(of: old, with: new).utf8), path: "index.json"); return nil } catch {
            return error
        }
    }

    @Test func parse_ofKernelOnlyRelease_roundTripsWithItsModules() throws {
        let index = Self.index([[Self.entry(), Self.entry(Self.kernelB, path: "hotpatches/k1/other.ko", release: "6.1.0-58-amd64")]])
        let parsed = try ChannelIndex.parse(index.encoded(), path: "index.json")
        #expect(parsed == index)
        #expect(parsed.releases[1].fileReferences.map(\.path) == ["hotpatches/k1/livepatch_l1.ko", "hotpatches/k1/other.ko"])
        let text = String(decoding: index.encoded(), as: UTF8.self)
        #expect(text.contains(#""livepatch": "livepatch_l1""#))
        #expect(text.contains(#""build_id": "\#(Self.kernelA)""#))
    }

    @Test func encode_ofReleaseWithoutKernelEntries_writesNoKernelField() throws {
        let fixture = try ChannelFixture()
        #expect(!fixture.indexText.contains("\"kernel\""))
    }

    @Test func parse_whenReleaseHasNeitherTargetsNorKernel_refusesNamingTargets() {
        #expect(refusal(Self.index([[]])) == .invalidValue(path: "index.json", field: "releases[1].targets",
                                                          reason: "is empty, and the release has no kernel entries"))
    }

    @Test func parse_whenKernelBuildIDIsNotHex_refusesNamingTheField() {
        let refused = refusal(editing: Self.kernelA.description, "not-hex", in: Self.index([[Self.entry()]]))
        #expect(refused == .invalidValue(path: "index.json", field: "releases[1].kernel[0].build_id", reason: "'not-hex' is not hex"))
    }

    @Test func parse_whenLivepatchNameIsNotAModuleName_refuses() {
        guard case let .invalidValue(_, field, reason)? = refusal(editing: "\"livepatch_l1\"", "\"live-patch/1\"", in: Self.index([[Self.entry()]])) else {
            Issue.record("accepted"); return
        }
        #expect(field == "releases[1].kernel[0].livepatch")
        #expect(reason.contains("letters, digits and '_'"))
    }

    @Test func parse_whenLivepatchNameIsLongerThanTheKernelKeeps_refuses() {
        let long = String(repeating: "x", count: 56)
        guard case let .invalidValue(_, field, _)? = refusal(Self.index([[Self.entry(name: long)]])) else { Issue.record("accepted"); return }
        #expect(field == "releases[1].kernel[0].livepatch")
        #expect(refusal(Self.index([[Self.entry(name: String(repeating: "x", count: 55))]])) == nil)
    }

    @Test func parse_whenKernelReleaseHasASpace_refuses() {
        guard case let .invalidValue(_, field, _)? = refusal(Self.index([[Self.entry(release: "6.1.0 amd64")]])) else {
            Issue.record("accepted"); return
        }
        #expect(field == "releases[1].kernel[0].release")
    }

    @Test func parse_whenKernelEntryHasUnknownOrMissingField_refusesNamingIt() {
        let index = Self.index([[Self.entry()]])
        #expect(refusal(editing: "\"livepatch\":", "\"patch\":", in: index)
                == .unknownField(path: "index.json", field: "releases[1].kernel[0].patch"))
        #expect(refusal(editing: "\"sha256\":", "\"sha\":", in: index)
                == .unknownField(path: "index.json", field: "releases[1].kernel[0].module.sha"))
    }

    @Test func parse_whenModulePathLeavesTheChannel_refuses() {
        guard case .unsafePath? = refusal(Self.index([[Self.entry(path: "../outside.ko")]])) else { Issue.record("accepted"); return }
    }

    @Test func parse_whenOneReleaseHasTwoModulesForOneKernel_refuses() {
        let index = Self.index([[Self.entry(), Self.entry(name: "livepatch_other", path: "hotpatches/k1/other.ko")]])
        guard case let .invalidValue(_, field, reason)? = refusal(index) else { Issue.record("accepted"); return }
        #expect(field == "releases[1].kernel[1].build_id")
        #expect(reason.contains("kernel[0]"))
    }

    @Test func parse_whenTwoLevelsGiveDifferentModulesOneName_refuses() {
        let index = Self.index([[Self.entry()], [Self.entry(path: "hotpatches/k2/livepatch_l1.ko", bytes: Array("changed".utf8))]])
        guard case let .invalidValue(_, field, reason)? = refusal(index) else { Issue.record("accepted"); return }
        #expect(field == "releases[2].kernel[0].livepatch")
        #expect(reason.contains("'k1'"))
    }

    @Test func parse_whenTwoLevelsNameTheSameModule_accepts() {
        #expect(refusal(Self.index([[Self.entry()], [Self.entry()]])) == nil)
        // One name for two kernel builds is fine too: only one kernel runs.
        #expect(refusal(Self.index([[Self.entry()], [Self.entry(Self.kernelB, path: "hotpatches/k2/livepatch_l1.ko",
                                                                bytes: Array("for B".utf8))]])) == nil)
    }

    @Test func verify_ofKernelRelease_copiesModulesIntoTheStore() throws {
        let fixture = try ChannelFixture()
        let module = try fixture.write("hotpatches/k2/livepatch_l2.ko", Self.moduleBytes)
        fixture.index.releases.append(.hotpatch(id: "k2", baseline: "B1", level: 2, description: "kernel fix", cves: [], targets: [],
                                                kernel: [.init(release: "6.1.0-57-amd64", buildID: Self.kernelA, livepatch: "livepatch_l2", module: module)]))
        try fixture.publish()
        let verified = try fixture.verify()
        let release = try #require(verified.hotpatchReleases.first { $0.id == "k2" })
        #expect(release.hotpatch.targets.isEmpty)
        let patch = try #require(release.kernel.first)
        #expect(patch.livepatchName == "livepatch_l2" && patch.buildID == Self.kernelA && patch.kernelRelease == "6.1.0-57-amd64")
        #expect(patch.modulePath.hasPrefix(fixture.store + "/"))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: patch.modulePath))) == Self.moduleBytes)
        #expect(verified.hotpatchReleases.first { $0.id == "hp1" }?.kernel == [])
    }

    @Test func verify_whenModuleWasAltered_refusesItsHash() throws {
        let fixture = try ChannelFixture()
        let module = try fixture.write("hotpatches/k2/livepatch_l2.ko", Self.moduleBytes)
        fixture.index.releases.append(.hotpatch(id: "k2", baseline: "B1", level: 2, description: "", cves: [], targets: [],
                                                kernel: [.init(release: "6.1.0-57-amd64", buildID: Self.kernelA, livepatch: "livepatch_l2", module: module)]))
        try fixture.publish()
        var altered = Self.moduleBytes
        altered[altered.count - 1] ^= 1
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/k2/livepatch_l2.ko", altered)
        guard case .hashMismatch? = fixture.refusal() else { Issue.record("altered module accepted"); return }
    }
}
