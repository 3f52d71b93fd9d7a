import Foundation
import Glibc
import Testing
@testable import Artifact

/// `ChannelVerifier.check` tells a publication still being written (what a publisher or a sync
/// tool leaves between two writes) from a channel that is refused for good.
@Suite struct ChannelCheckOutcomeTests {
    private enum Found: Equatable {
        case verified
        case incomplete(ChannelRefusal)
        case refused(ChannelRefusal)
    }

    private func check(_ fixture: ChannelFixture, now: Date = ChannelFixture.now) -> Found {
        switch fixture.verifier().check(highestAcceptedVersion: nil, now: now) {
        case .verified: return .verified
        case let .incomplete(refusal): return .incomplete(refusal)
        case let .refused(refusal): return .refused(refusal)
        }
    }

    /// A second fix release naming `fixes/fix2/tool`, signed, with the file not written yet.
    private func publishFixNamingAnUnsyncedFile(_ fixture: ChannelFixture, bytes: [UInt8]) throws {
        let reference = ChannelIndex.FileReference(path: "fixes/fix2/tool", sha256: ChannelKeys.sha256(bytes), length: UInt64(bytes.count))
        fixture.index.version = 2
        fixture.index.releases.append(.fix(id: "fix2", baseline: "B1", description: "another tool", cves: [],
                                           files: [.init(kind: .file(destination: "/usr/local/bin/tool2", mode: 0o755), file: reference)]))
        try fixture.publish()
    }

    // MARK: What a publication in progress leaves

    @Test func check_whenANewIndexStillHasThePreviousSignature_isIncomplete_untilItsSignatureLands() throws {
        let fixture = try ChannelFixture()
        fixture.index.version = 2
        try ChannelFixture.writeFile(fixture.channel + "/index.json", fixture.index.encoded())
        guard case let .incomplete(.badSignature(path, _)) = check(fixture) else {
            Issue.record("not incomplete: \(check(fixture))")
            return
        }
        #expect(path == fixture.channel + "/index.json")
        try fixture.publish()
        #expect(check(fixture) == .verified)
    }

    @Test func check_whenTheIndexHasNoSignatureYet_isIncomplete() throws {
        let fixture = try ChannelFixture()
        try FileManager.default.removeItem(atPath: fixture.channel + "/index.json.sig")
        #expect(check(fixture) == .incomplete(.missingSignature(path: fixture.channel + "/index.json.sig")))
    }

    @Test func check_whenTheSignatureIsHalfWritten_isIncomplete() throws {
        let fixture = try ChannelFixture()
        let line = try String(contentsOfFile: fixture.channel + "/index.json.sig", encoding: .utf8)
        try ChannelFixture.writeFile(fixture.channel + "/index.json.sig", Array(line.utf8.prefix(20)))
        guard case .incomplete(.badSignature) = check(fixture) else { Issue.record("not incomplete: \(check(fixture))"); return }
    }

    @Test func check_whenAFileTheSignedIndexNamesIsNotSyncedYet_isIncomplete_thenVerifiesOnceItIs() throws {
        let fixture = try ChannelFixture()
        let bytes = Array("#!/bin/sh\necho two\n".utf8)
        try publishFixNamingAnUnsyncedFile(fixture, bytes: bytes)
        guard case let .incomplete(.unreadableFile(path, _)) = check(fixture) else {
            Issue.record("not incomplete: \(check(fixture))")
            return
        }
        #expect(path == fixture.channel + "/fixes/fix2/tool")
        try fixture.write("fixes/fix2/tool", bytes)
        #expect(check(fixture) == .verified)
    }

    @Test func check_whenAFileIsStillShorterThanDeclared_isIncomplete() throws {
        let fixture = try ChannelFixture()
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so", Array(fixture.patchObjectBytes.prefix(40)))
        #expect(check(fixture) == .incomplete(.lengthMismatch(path: fixture.channel + "/hotpatches/hp1/fix.so", expected: 96, actual: 40)))
    }

    // MARK: What no publication in progress explains

    @Test func check_whenTheIndexIsSignedByAnUntrustedKey_isRefused() throws {
        let fixture = try ChannelFixture()
        let stranger = ChannelSigningKey.generate()
        try fixture.publish(signer: stranger)
        #expect(check(fixture) == .refused(.untrustedKey(path: fixture.channel + "/index.json.sig",
                                                         fingerprint: stranger.publicKey().fingerprint)))
    }

    @Test func check_whenACompleteFileHasAnotherHash_isRefused() throws {
        let fixture = try ChannelFixture()
        var altered = fixture.patchObjectBytes
        altered[0] ^= 0xff
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so", altered)
        guard case .refused(.hashMismatch) = check(fixture) else { Issue.record("not refused: \(check(fixture))"); return }
    }

    @Test func check_whenTheIndexExpired_isRefused() throws {
        let fixture = try ChannelFixture()
        guard case .refused(.expired) = check(fixture, now: ChannelFixture.now.addingTimeInterval(86_400)) else {
            Issue.record("not refused")
            return
        }
    }

    @Test func check_whenASignedIndexDoesNotParse_isRefused() throws {
        let fixture = try ChannelFixture()
        try fixture.publishRaw(Array("{\"format\": 1,".utf8))
        guard case .refused(.malformedIndex) = check(fixture) else { Issue.record("not refused: \(check(fixture))"); return }
    }

    @Test func check_whenTheTrustedKeysFolderIsMissing_isRefused_thoughNothingIsThere() throws {
        let fixture = try ChannelFixture()
        try FileManager.default.removeItem(atPath: fixture.keys)
        guard case .refused(.unreadableFile) = check(fixture) else { Issue.record("not refused: \(check(fixture))"); return }
    }

    @Test func verify_stillRefusesAtOnceWhatCheckCallsIncomplete() throws {
        let fixture = try ChannelFixture()
        try publishFixNamingAnUnsyncedFile(fixture, bytes: Array("x".utf8))
        // `verify`, for `hotpatch-pack verify`, keeps refusing at once.
        guard case .unreadableFile = fixture.refusal() else { Issue.record("verify did not refuse"); return }
        try FileManager.default.removeItem(atPath: fixture.channel + "/index.json.sig")
        #expect(fixture.refusal() == .missingSignature(path: fixture.channel + "/index.json.sig"))
    }
}
