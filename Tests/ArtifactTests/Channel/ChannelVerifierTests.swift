import Foundation
import Glibc
import LinuxSystem
import Testing
@testable import Artifact

@Suite struct ChannelVerifierTests {
    // MARK: Acceptance

    @Test func verify_whenChannelIsValid_yieldsHotpatchWithPatchObjectFromStore() throws {
        let fixture = try ChannelFixture()
        let verified = try fixture.verify()
        #expect(verified.version == 1)
        #expect(verified.keyFingerprint == fixture.key.publicKey().fingerprint)
        #expect(verified.releases.map(\.id) == ["B1", "hp1", "fix1"])
        let hotpatch = try #require(verified.hotpatches.first)
        #expect(hotpatch.id == "hp1" && hotpatch.baseline == "B1" && hotpatch.level == 1)
        let target = try #require(hotpatch.targets.first)
        let expectedHash = ChannelKeys.sha256(fixture.patchObjectBytes)
        #expect(target.patchObjectPath == fixture.store + "/objects/" + expectedHash + ".so")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: target.patchObjectPath))) == fixture.patchObjectBytes)
        #expect(target.redirections.first?.offset == 0x1140)
        #expect(target.references == [TargetSymbolReference(symbol: "table", offset: 0x4010)])
        let fix = try #require(verified.fixes.first)
        #expect(fix.files.first?.kind == .file(destination: "/usr/local/bin/tool", mode: 0o755))
        #expect(verified.baselines.map(\.id) == ["B1"])
    }

    @Test func verify_whenChannelFileChangesAfterVerification_storeCopyKeepsVerifiedBytes() throws {
        let fixture = try ChannelFixture()
        let path = try #require(fixture.verify().hotpatches.first?.targets.first?.patchObjectPath)
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so", Array("evil".utf8))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == fixture.patchObjectBytes)
    }

    @Test func verify_whenStoreCopyIsDamaged_replacesItFromTheChannel() throws {
        let fixture = try ChannelFixture()
        let path = try #require(fixture.verify().hotpatches.first?.targets.first?.patchObjectPath)
        chmod(path, 0o644)
        try ChannelFixture.writeFile(path, Array("damaged".utf8))
        let again = try #require(fixture.verify().hotpatches.first?.targets.first?.patchObjectPath)
        #expect(again == path)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == fixture.patchObjectBytes)
    }

    @Test func verify_whenSeveralKeysAreTrusted_acceptsAnyOfThem() throws {
        let fixture = try ChannelFixture()
        let next = ChannelSigningKey.generate()
        try ChannelFixture.writeFile(fixture.keys + "/next.pub", Array(next.publicKey().fileText.utf8))
        try fixture.publish(signer: next)
        #expect(try fixture.verify().keyFingerprint == next.publicKey().fingerprint)
    }

    @Test func verify_whenVersionEqualsHighestAccepted_accepts() throws {
        let fixture = try ChannelFixture()
        #expect(fixture.refusal(highest: 1) == nil)
    }

    @Test func verify_whenBaselineHasNoFiles_accepts() throws {
        let fixture = try ChannelFixture()
        fixture.index.releases = [.baseline(id: "B1", planned: false, description: "", cves: [], files: [])]
        try fixture.publish()
        #expect(try fixture.verify().baselines.first?.planned == false)
    }

    // MARK: Signature and trust

    @Test func verify_whenSignatureIsMissing_refusesAsMissingSignature() throws {
        let fixture = try ChannelFixture()
        try FileManager.default.removeItem(atPath: fixture.channel + "/index.json.sig")
        #expect(fixture.refusal() == .missingSignature(path: fixture.channel + "/index.json.sig"))
    }

    @Test func verify_whenSignatureDoesNotMatchIndex_refusesAsBadSignature() throws {
        let fixture = try ChannelFixture()
        var signature = try fixture.key.sign(fixture.index.encoded())
        var bytes = signature.signature
        bytes[10] ^= 0x01
        signature = IndexSignature(publicKey: signature.publicKey, signature: bytes)
        try ChannelFixture.writeFile(fixture.channel + "/index.json.sig", Array(signature.fileText.utf8))
        guard case let .badSignature(path, _) = fixture.refusal() else { Issue.record("not refused as bad signature"); return }
        #expect(path == fixture.channel + "/index.json")
    }

    @Test func verify_whenSignatureFileIsMalformed_refusesAsBadSignature() throws {
        let fixture = try ChannelFixture()
        try ChannelFixture.writeFile(fixture.channel + "/index.json.sig", Array("ed25519 abc\n".utf8))
        guard case let .badSignature(path, _) = fixture.refusal() else { Issue.record("not refused as bad signature"); return }
        #expect(path == fixture.channel + "/index.json.sig")
    }

    @Test func verify_whenSignedByUntrustedKey_refusesAsUntrustedKey() throws {
        let fixture = try ChannelFixture()
        let stranger = ChannelSigningKey.generate()
        try fixture.publish(signer: stranger)
        #expect(fixture.refusal() == .untrustedKey(path: fixture.channel + "/index.json.sig",
                                                   fingerprint: stranger.publicKey().fingerprint))
    }

    @Test func verify_whenNoKeyIsTrusted_refusesAsNoTrustedKeys() throws {
        let fixture = try ChannelFixture()
        try FileManager.default.removeItem(atPath: fixture.keys + "/publisher.pub")
        #expect(fixture.refusal() == .noTrustedKeys(path: fixture.keys))
    }

    @Test func verify_whenTrustedKeyFileIsMalformed_refusesNamingIt() throws {
        let fixture = try ChannelFixture()
        try ChannelFixture.writeFile(fixture.keys + "/broken.pub", Array("rsa AAAA\n".utf8))
        guard case let .malformedTrustedKey(path, _) = fixture.refusal() else { Issue.record("not refused"); return }
        #expect(path == fixture.keys + "/broken.pub")
    }

    // MARK: Freshness

    @Test func verify_whenIndexVersionIsLowerThanAccepted_refusesAsRollback() throws {
        let fixture = try ChannelFixture()
        #expect(fixture.refusal(highest: 2) == .rollback(path: fixture.channel + "/index.json", version: 1, highestAccepted: 2))
    }

    @Test func verify_whenNowIsPastExpires_refusesAsExpired() throws {
        let fixture = try ChannelFixture()
        let later = ChannelFixture.now.addingTimeInterval(86_400 + 1)
        guard case let .expired(path, expires, _) = fixture.refusal(now: later) else { Issue.record("not refused"); return }
        #expect(path == fixture.channel + "/index.json")
        #expect(expires == fixture.index.expires)
    }

    @Test func verify_whenNowEqualsExpires_refusesWithoutGrace() throws {
        let fixture = try ChannelFixture()
        let boundary = ChannelFixture.now.addingTimeInterval(86_400)
        #expect(fixture.refusal(now: boundary.addingTimeInterval(-1)) == nil)
        guard case .expired = fixture.refusal(now: boundary) else { Issue.record("accepted at the expiry instant"); return }
    }

    // MARK: Files

    @Test func verify_whenFileHashDiffers_refusesAsHashMismatch() throws {
        let fixture = try ChannelFixture()
        var altered = fixture.patchObjectBytes
        altered[0] ^= 0xff
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so", altered)
        #expect(fixture.refusal() == .hashMismatch(path: fixture.channel + "/hotpatches/hp1/fix.so",
                                                   expected: ChannelKeys.sha256(fixture.patchObjectBytes),
                                                   actual: ChannelKeys.sha256(altered)))
    }

    @Test func verify_whenFileIsShorterThanDeclared_refusesAsLengthMismatch() throws {
        let fixture = try ChannelFixture()
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so", Array(fixture.patchObjectBytes.dropLast(6)))
        #expect(fixture.refusal() == .lengthMismatch(path: fixture.channel + "/hotpatches/hp1/fix.so", expected: 96, actual: 90))
    }

    @Test func verify_whenFileIsLargerThanDeclared_refusesAsEndlessData() throws {
        let fixture = try ChannelFixture()
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so",
                                     fixture.patchObjectBytes + [UInt8](repeating: 0, count: 3 << 20))
        #expect(fixture.refusal() == .fileTooLarge(path: fixture.channel + "/hotpatches/hp1/fix.so", declared: 96))
    }

    @Test func measure_neverReadsMoreThanOneBytePastTheDeclaredLength() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        // The same pipe, opened as a file while its write end is open (else the open would wait for a writer).
        let pipeFile = try OpenFile(path: "/dev/fd/\(fds[0])", flags: O_RDONLY)
        let payload = [UInt8](repeating: 7, count: 1000)
        #expect(payload.withUnsafeBytes { Glibc.write(fds[1], $0.baseAddress, $0.count) } == 1000)
        close(fds[1])
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        #expect(try ChannelFiles.measure(pipeFile, length: 100, buffer: buffer) == .long)
        var rest = [UInt8](repeating: 0, count: 2000)
        let left = rest.withUnsafeMutableBytes { Glibc.read(fds[0], $0.baseAddress, $0.count) }
        #expect(left == 1000 - 101)
    }

    @Test func verify_whenFileFromOlderIndexIsSwappedIn_refusesAsMixAndMatch() throws {
        let fixture = try ChannelFixture()
        let oldBytes = fixture.patchObjectBytes
        _ = try fixture.verify()
        // Version 2 ships a new patch object at the same path.
        let newBytes = oldBytes.map { $0 ^ 0x5a }
        let reference = try fixture.write("hotpatches/hp1/fix.so", newBytes)
        guard case let .hotpatch(id, baseline, level, text, cves, targets, kernel, _) = fixture.index.releases[1] else { return }
        var target = targets[0]
        target.patchObject = reference
        fixture.index.releases[1] = .hotpatch(id: id, baseline: baseline, level: level, description: text, cves: cves, targets: [target], kernel: kernel)
        fixture.index.version = 2
        try fixture.publish()
        // The mirror serves the new index with the file of version 1.
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/fix.so", oldBytes)
        #expect(fixture.refusal(highest: 1, store: fixture.root + "/store2")
                == .hashMismatch(path: fixture.channel + "/hotpatches/hp1/fix.so",
                                 expected: reference.sha256, actual: ChannelKeys.sha256(oldBytes)))
    }

    @Test func verify_whenDeclaredLengthExceedsPolicy_refuses() throws {
        let fixture = try ChannelFixture()
        #expect(fixture.refusal(policy: .init(maxFileBytes: 50))
                == .declaredLengthTooLarge(path: fixture.channel + "/hotpatches/hp1/fix.so", length: 96, limit: 50))
    }

    @Test func verify_whenIndexIsLargerThanCap_refusesAsIndexTooLarge() throws {
        let fixture = try ChannelFixture()
        #expect(fixture.refusal(policy: .init(maxIndexBytes: 100))
                == .indexTooLarge(path: fixture.channel + "/index.json", limit: 100))
    }

    @Test func verify_whenFilePathIsAbsolute_refusesAsUnsafePath() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"hotpatches/hp1/fix.so\"", "\"/etc/passwd\"")
        #expect(fixture.refusal() == .unsafePath(path: fixture.channel + "/index.json", entry: "/etc/passwd", reason: "is absolute"))
    }

    @Test func verify_whenFilePathHasDotDot_refusesAsUnsafePath() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"hotpatches/hp1/fix.so\"", "\"hotpatches/../../keys/publisher.pub\"")
        #expect(fixture.refusal() == .unsafePath(path: fixture.channel + "/index.json",
                                                 entry: "hotpatches/../../keys/publisher.pub", reason: "has '..'"))
    }

    @Test func verify_whenFilePathLeavesChannelThroughSymlink_refusesAsEscape() throws {
        let fixture = try ChannelFixture()
        let outside = fixture.root + "/outside.so"
        try ChannelFixture.writeFile(outside, fixture.patchObjectBytes)
        let link = fixture.channel + "/hotpatches/hp1/fix.so"
        try FileManager.default.removeItem(atPath: link)
        #expect(symlink(outside, link) == 0)
        #expect(fixture.refusal() == .pathEscapesChannel(path: link, resolved: outside))
    }

    @Test func verify_whenSymlinkStaysInsideChannel_accepts() throws {
        let fixture = try ChannelFixture()
        let link = fixture.channel + "/hotpatches/hp1/fix.so"
        try ChannelFixture.writeFile(fixture.channel + "/hotpatches/hp1/real.so", fixture.patchObjectBytes)
        try FileManager.default.removeItem(atPath: link)
        #expect(symlink("real.so", link) == 0)
        #expect(fixture.refusal() == nil)
    }

    @Test func verify_whenDestinationIsRelative_refusesAsInvalidDestination() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"/usr/local/bin/tool\"", "\"usr/local/bin/tool\"")
        #expect(fixture.refusal() == .invalidDestination(path: fixture.channel + "/index.json",
                                                         destination: "usr/local/bin/tool", reason: "is not absolute"))
    }

    // MARK: Releases

    @Test func verify_whenTwoReleasesShareAnID_refusesAsDuplicateID() throws {
        let fixture = try ChannelFixture()
        fixture.index.releases.append(.baseline(id: "hp1", planned: true, description: "", cves: [], files: []))
        try fixture.publish()
        #expect(fixture.refusal() == .duplicateID(path: fixture.channel + "/index.json", id: "hp1"))
    }

    @Test func verify_whenHotpatchNamesUnknownBaseline_refusesAsUnknownBaseline() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"baseline\": \"B1\",\n      \"level\"", "\"baseline\": \"B9\",\n      \"level\"")
        #expect(fixture.refusal() == .unknownBaseline(path: fixture.channel + "/index.json", release: "hp1", baseline: "B9"))
    }

    @Test func verify_whenLevelsAreNotIncreasing_refusesAsLevelsNotIncreasing() throws {
        let fixture = try ChannelFixture()
        guard case let .hotpatch(_, baseline, _, text, cves, targets, kernel, _) = fixture.index.releases[1] else { return }
        fixture.index.releases.append(.hotpatch(id: "hp2", baseline: baseline, level: 1, description: text, cves: cves, targets: targets, kernel: kernel))
        try fixture.publish()
        #expect(fixture.refusal() == .levelsNotIncreasing(path: fixture.channel + "/index.json", release: "hp2",
                                                          baseline: "B1", level: 1, previous: 1))
    }

    @Test func verify_whenKindIsUnknown_refusesAsUnknownKind() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"kind\": \"fix\"", "\"kind\": \"firmware\"")
        #expect(fixture.refusal() == .unknownKind(path: fixture.channel + "/index.json", field: "releases[2].kind", kind: "firmware"))
    }

    @Test func verify_whenFieldHasWrongType_refusesAsWrongFieldType() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"level\": 1", "\"level\": \"1\"")
        #expect(fixture.refusal() == .wrongFieldType(path: fixture.channel + "/index.json", field: "releases[1].level",
                                                     expected: "an integer"))
    }

    @Test func verify_whenFieldIsUnknown_refusesAsUnknownField() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"planned\": true", "\"planned\": true,\n      \"plannd\": false")
        #expect(fixture.refusal() == .unknownField(path: fixture.channel + "/index.json", field: "releases[0].plannd"))
    }

    @Test func verify_whenIndexIsMalformedJSON_refusesAsMalformedIndex() throws {
        let fixture = try ChannelFixture()
        try fixture.publishEdited("\"releases\": [", "\"releases\": [,")
        guard case let .malformedIndex(path, reason) = fixture.refusal() else { Issue.record("not refused"); return }
        #expect(path == fixture.channel + "/index.json")
        #expect(reason.contains("at byte"))
    }

    @Test func verify_whenChannelDirectoryIsMissing_refusesWithTheFailedCallInOneSentence() throws {
        let fixture = try ChannelFixture()
        try FileManager.default.removeItem(atPath: fixture.channel)
        #expect(fixture.refusal() == .unreadableFile(
            path: fixture.channel, reason: "realpath failed for \(fixture.channel): ENOENT (No such file or directory)"))
    }

    @Test func verify_whenTheStoreIsAFile_refusesAsStoreFailureNamingMkdir() throws {
        let fixture = try ChannelFixture()
        try FileManager.default.removeItem(atPath: fixture.store)
        try ChannelFixture.writeFile(fixture.store, [1])
        #expect(fixture.refusal() == .storeFailure(
            path: fixture.store, reason: "mkdir failed for \(fixture.store): ENOTDIR (Not a directory)"))
    }

    @Test func verify_whenStoreFolderIsMissingItsParent_refusesAsStoreFailure() throws {
        let fixture = try ChannelFixture()
        let store = fixture.root + "/missing/store"
        #expect(fixture.refusal(store: store) == .storeFailure(
            path: store, reason: "mkdir failed for \(store): ENOENT (No such file or directory)"))
    }

    @Test func verify_whenInstallsFolderIsOpen_bringsItBackTo0700() throws {
        let fixture = try ChannelFixture()
        _ = try fixture.verify()
        chmod(fixture.store + "/installs", 0o755)
        _ = try fixture.verify()
        #expect(try Files.linkStatus(fixture.store + "/installs").st_mode & 0o7777 == 0o700)
    }

    // MARK: Permissions

    @Test func verify_whenChannelDirectoryIsWorldWritable_refusesAsWritableByOthers() throws {
        let fixture = try ChannelFixture()
        chmod(fixture.channel, 0o777)
        #expect(fixture.refusal() == .writableByOthers(path: fixture.channel, reason: "mode 777 lets the group or others write"))
    }

    @Test func verify_whenFileInsideIsGroupWritable_refusesAsWritableByOthers() throws {
        let fixture = try ChannelFixture()
        chmod(fixture.channel + "/hotpatches/hp1/fix.so", 0o664)
        guard case let .writableByOthers(path, _) = fixture.refusal() else { Issue.record("not refused"); return }
        #expect(path == fixture.channel + "/hotpatches/hp1/fix.so")
    }

    @Test func verify_whenFileInsideIsOwnedByAnotherUser_refusesAsWritableByOthers() throws {
        let fixture = try ChannelFixture()
        try #require(geteuid() == 0, "needs root to chown")
        #expect(chown(fixture.channel + "/index.json", 4242, 4242) == 0)
        #expect(fixture.refusal() == .writableByOthers(path: fixture.channel + "/index.json", reason: "owned by uid 4242"))
    }

    @Test func verify_whenPolicyAllowsWritableChannel_accepts() throws {
        let fixture = try ChannelFixture()
        chmod(fixture.channel, 0o777)
        #expect(fixture.refusal(policy: .init(allowGroupOrWorldWritable: true)) == nil)
    }

    // MARK: Byte flips

    @Test func verify_whenAnyByteOfPatchObjectOrIndexIsFlipped_refusesEveryFlip() throws {
        let fixture = try ChannelFixture()
        let object = fixture.channel + "/hotpatches/hp1/fix.so"
        for offset in fixture.patchObjectBytes.indices {
            var bytes = fixture.patchObjectBytes
            bytes[offset] ^= 0x01
            try ChannelFixture.writeFile(object, bytes)
            // A fresh store each time: a store that already holds the verified copy never rereads the channel file.
            let store = fixture.root + "/flip-store"
            #expect(fixture.refusal(store: store) != nil, "flip at patch object byte \(offset) accepted")
            try? FileManager.default.removeItem(atPath: store)
        }
        try ChannelFixture.writeFile(object, fixture.patchObjectBytes)
        let indexBytes = fixture.index.encoded()
        let signature = try fixture.key.sign(indexBytes)
        try ChannelFixture.writeFile(fixture.channel + "/index.json.sig", Array(signature.fileText.utf8))
        for offset in indexBytes.indices {
            var bytes = indexBytes
            bytes[offset] ^= 0x01
            try ChannelFixture.writeFile(fixture.channel + "/index.json", bytes)
            #expect(fixture.refusal() != nil, "flip at index byte \(offset) accepted")
        }
        try ChannelFixture.writeFile(fixture.channel + "/index.json", indexBytes)
        #expect(fixture.refusal() == nil)
    }
}
