import Foundation
import Glibc
import LinuxSystem
import Testing
@testable import Artifact

/// The last verified index, kept in the store with its signature: what stays in force when the
/// channel's index vanishes, expires or rolls back, across restarts; checked again before use.
@Suite struct KeptIndexTests {
    @Test func verifyKept_whenNothingWasEverAccepted_isNil() throws {
        let fixture = try ChannelFixture()
        #expect(try fixture.verifier().verifyKept() == nil)
    }

    @Test func verifyKept_afterTheChannelIndexVanishes_givesTheVerifiedReleasesFromTheStore() throws {
        let fixture = try ChannelFixture()
        let accepted = try fixture.verify()
        try FileManager.default.removeItem(atPath: fixture.channel)
        let kept = try #require(try fixture.verifier().verifyKept())
        #expect(kept.version == accepted.version)
        #expect(kept.indexSHA256 == accepted.indexSHA256)
        #expect(kept.keyFingerprint == fixture.key.publicKey().fingerprint)
        #expect(kept.releases.map(\.id) == ["B1", "hp1", "fix1"])
        #expect(kept.hotpatches == accepted.hotpatches, "the same patch objects, in the store")
        #expect(kept.fixes.first?.files.first?.storePath == accepted.fixes.first?.files.first?.storePath)
    }

    @Test func verifyKept_whenTheKeptIndexHasExpired_stillGivesIt() throws {
        let fixture = try ChannelFixture()
        _ = try fixture.verify()
        #expect(fixture.refusal(now: ChannelFixture.now.addingTimeInterval(2 * 86_400)) != nil, "the channel is expired")
        #expect(try fixture.verifier().verifyKept()?.version == 1)
    }

    @Test func verifyKept_keepsTheNewestAcceptedIndex_notARefusedOne() throws {
        let fixture = try ChannelFixture()
        fixture.index.version = 5
        try fixture.publish()
        _ = try fixture.verify()
        fixture.index.version = 4
        try fixture.publish()
        #expect(fixture.refusal(highest: 5) == .rollback(path: fixture.channel + "/index.json", version: 4, highestAccepted: 5))
        #expect(try fixture.verifier().verifyKept()?.version == 5)
    }

    @Test func verifyKept_whenAByteOfTheKeptIndexIsFlipped_refusesTheSignature() throws {
        let fixture = try ChannelFixture()
        _ = try fixture.verify()
        let path = fixture.store + "/verified-index"
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 10] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        guard case let .channel(.badSignature(refused, _))? = keptError(fixture) else {
            Issue.record("not refused as a bad signature: \(String(describing: keptError(fixture)))"); return
        }
        #expect(refused == path)
    }

    @Test func verifyKept_whenItsKeyIsNoLongerTrusted_refuses() throws {
        let fixture = try ChannelFixture()
        _ = try fixture.verify()
        try ChannelFixture.writeFile(fixture.keys + "/publisher.pub",
                                     Array(ChannelSigningKey.generate().publicKey().fileText.utf8))
        guard case .channel(.untrustedKey)? = keptError(fixture) else {
            Issue.record("not refused as untrusted: \(String(describing: keptError(fixture)))"); return
        }
    }

    @Test func verifyKept_whenAStoreCopyIsDamaged_refusesNamingIt() throws {
        let fixture = try ChannelFixture()
        let accepted = try fixture.verify()
        let object = try #require(accepted.hotpatches.first?.targets.first?.patchObjectPath)
        chmod(object, 0o644)
        try Data([0x00]).write(to: URL(fileURLWithPath: object))
        guard case let .channel(.storeFailure(path, reason))? = keptError(fixture) else {
            Issue.record("not refused as a store failure: \(String(describing: keptError(fixture)))"); return
        }
        #expect(path == object)
        #expect(reason.contains("hotpatches/hp1/fix.so"), "\(reason)")
    }

    @Test func verify_keepsTheIndexAtomically_andRewritesOnlyWhenItChanges() throws {
        let fixture = try ChannelFixture()
        _ = try fixture.verify()
        let path = fixture.store + "/verified-index"
        let first = try Files.status(path)
        _ = try fixture.verify()
        #expect(try Files.status(path).st_ino == first.st_ino, "the same index is not written again")
        fixture.index.version = 2
        try fixture.publish()
        _ = try fixture.verify()
        #expect(try fixture.verifier().verifyKept()?.version == 2)
        #expect(try Files.list(fixture.store).sorted() == ["installs", "objects", "verified-index"], "no temporary file is left")
    }

    private func keptError(_ fixture: ChannelFixture) -> ArtifactError? {
        do {
            _ = try fixture.verifier().verifyKept()
            return nil
        } catch {
            return error
        }
    }
}
