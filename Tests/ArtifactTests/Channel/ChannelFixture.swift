import Foundation
import Testing
@testable import Artifact

/// A channel in a temporary folder, with a trusted key, a store, and a small valid index:
/// baseline `B1` (no files), hotpatch `hp1` (level 1, one target, one patch object) and fix `fix1`
/// (one plain file). Tests change it, publish it, and verify it; `deinit` removes the folder.
final class ChannelFixture {
    static let now = Date(timeIntervalSince1970: 1_750_000_000)

    private let scratch: TemporaryDirectory
    let root: String
    var channel: String { root + "/channel" }
    var keys: String { root + "/keys" }
    var store: String { root + "/store" }
    let key = ChannelSigningKey.generate()
    var index: ChannelIndex
    let patchObjectBytes: [UInt8] = (0..<96).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let fixFileBytes: [UInt8] = Array("#!/bin/sh\necho fixed\n".utf8)

    init() throws {
        scratch = try TemporaryDirectory(prefix: "channel-test")
        root = scratch.path
        index = ChannelIndex(version: 1, expires: RFC3339.format(Self.now.timeIntervalSince1970 + 86_400), releases: [])
        for directory in [channel, keys, store] { try Self.makeDirectory(directory) }
        try Self.writeFile(keys + "/publisher.pub", Array(key.publicKey(comment: "test").fileText.utf8))
        let object = try write("hotpatches/hp1/fix.so", patchObjectBytes)
        let fixFile = try write("fixes/fix1/tool", fixFileBytes)
        let target = ChannelIndex.Target(
            buildID: BuildID(hex: "0123456789abcdef0123456789abcdef01234567")!, pathHint: "/usr/bin/demo",
            patchObject: object,
            redirections: [FunctionRedirection(symbol: "parse", offset: 0x1140, size: 64,
                                               sha256: String(repeating: "ab", count: 32), replacement: "parse_fixed")],
            references: [TargetSymbolReference(symbol: "table", offset: 0x4010)])
        index.releases = [
            .baseline(id: "B1", planned: true, description: "first baseline", cves: [], files: []),
            .hotpatch(id: "hp1", baseline: "B1", level: 1, description: "fix parse", cves: ["CVE-2025-0001"], targets: [target], kernel: []),
            .fix(id: "fix1", baseline: "B1", description: "new tool", cves: [],
                 files: [.init(kind: .file(destination: "/usr/local/bin/tool", mode: 0o755), file: fixFile)]),
        ]
        try publish()
    }

    static func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, 0o755)
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o644)
    }

    /// Writes a file into the channel and returns its reference.
    @discardableResult
    func write(_ relative: String, _ bytes: [UInt8]) throws -> ChannelIndex.FileReference {
        let path = channel + "/" + relative
        try Self.makeDirectory((path as NSString).deletingLastPathComponent)
        try Self.writeFile(path, bytes)
        return .init(path: relative, sha256: ChannelKeys.sha256(bytes), length: UInt64(bytes.count))
    }

    /// Writes `index` (encoded as hotpatch-pack does) and its signature by `signer`.
    func publish(signer: ChannelSigningKey? = nil) throws {
        try publishRaw(index.encoded(), signer: signer)
    }

    /// Writes exactly `bytes` as the index and signs them.
    func publishRaw(_ bytes: [UInt8], signer: ChannelSigningKey? = nil) throws {
        try Self.writeFile(channel + "/index.json", bytes)
        try Self.writeFile(channel + "/index.json.sig", Array(try (signer ?? key).sign(bytes).fileText.utf8))
    }

    /// The current index text, for tests that edit the JSON by hand.
    var indexText: String { String(decoding: index.encoded(), as: UTF8.self) }

    /// Replaces `old` (which must occur) in the index text, then signs the result.
    func publishEdited(_ old: String, _ new: String) throws {
        let text = indexText
        #expect(text.contains(old), "fixture index lacks \(old)")
        try publishRaw(Array(text.replacingOccurrences(of: old, with: new).utf8))
    }

    func verifier(store: String? = nil, policy: ChannelPolicy = .init()) -> ChannelVerifier {
        ChannelVerifier(channelDirectory: channel, trustedKeysDirectory: keys, storeDirectory: store ?? self.store, policy: policy)
    }

    func verify(highest: Int? = nil, now: Date = ChannelFixture.now, store: String? = nil,
                policy: ChannelPolicy = .init()) throws -> VerifiedChannel {
        try verifier(store: store, policy: policy).verify(highestAcceptedVersion: highest, now: now)
    }

    /// The refusal `verify` throws, or nil if it accepts the channel (any other error fails the test).
    func refusal(highest: Int? = nil, now: Date = ChannelFixture.now, store: String? = nil,
                 policy: ChannelPolicy = .init()) -> ChannelRefusal? {
        do {
            _ = try verify(highest: highest, now: now, store: store, policy: policy)
            return nil
        } catch let ArtifactError.channel(refusal) {
            return refusal
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }
}
