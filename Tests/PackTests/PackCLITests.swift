import Foundation
import Testing
@testable import Artifact

/// Runs the real `hotpatch-pack` binary, built beside the test bundle.
enum Pack {
    /// Runs `hotpatch-pack ARGS` in `directory`.
    static func run(_ arguments: [String], in directory: String) throws -> ProgramRun {
        try Program.run(Products.hotpatchPack, arguments, in: directory)
    }
}

enum Shell {
    /// Runs a shell command line; fails the test if it fails.
    @discardableResult
    static func sh(_ command: String, in directory: String) throws -> String {
        let result = try Program.run("/bin/sh", ["-c", command], in: directory)
        #expect(result.status == 0, "\(command) failed: \(result.stderr)")
        return result.stdout
    }
}

/// A temporary folder for `hotpatch-pack` to work in, removed at the end of the test.
final class Scratch {
    private let directory: TemporaryDirectory
    var path: String { directory.path }

    init() throws { directory = try TemporaryDirectory(prefix: "pack-test") }

    func write(_ name: String, _ text: String) throws {
        try directory.write(name, text)
    }

    @discardableResult
    func pack(_ arguments: String...) throws -> ProgramRun { try Pack.run(arguments, in: path) }

    /// Runs `hotpatch-pack` and expects success.
    @discardableResult
    func packOK(_ arguments: String...) throws -> ProgramRun {
        let result = try Pack.run(arguments, in: path)
        #expect(result.status == 0, "hotpatch-pack \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        return result
    }

    /// A key pair (keys/publisher.pub trusted) and an initialised channel with baseline B1.
    func channelWithBaseline() throws {
        try FileManager.default.createDirectory(atPath: path + "/keys", withIntermediateDirectories: true)
        chmod(path + "/keys", 0o755)
        try packOK("keygen", "--private-key", "publisher.key", "--public-key", "keys/publisher.pub")
        try packOK("init", "--channel", "channel")
        try packOK("baseline", "--channel", "channel", "--id", "B1", "--planned", "--description", "first")
    }

    func index() throws -> ChannelIndex {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path + "/channel/index.json")))
        return try ChannelIndex.parse(bytes, path: "index.json")
    }
}

@Suite struct PackCLITests {
    @Test(arguments: ["", "keygen", "init", "hotpatch", "build", "build-deb", "kernel", "baseline", "fix", "publish", "verify", "list", "benchmark-verify"])
    func help_forEveryCommand_showsAnExample(command: String) throws {
        let scratch = try Scratch()
        let result = try Pack.run(command.isEmpty ? ["--help"] : [command, "--help"], in: scratch.path)
        #expect(result.status == 0)
        #expect(result.stdout.contains("hotpatch-pack \(command.isEmpty ? "keygen" : command)"))
        #expect(result.stdout.contains("Example") || command.isEmpty)
    }

    @Test func help_ofRoot_hidesTheBenchmark() throws {
        let scratch = try Scratch()
        #expect(!(try scratch.pack("--help").stdout.contains("benchmark-verify")))
    }

    @Test func keygen_writesPrivateKeyMode0600AndTrustedKeyFile() throws {
        let scratch = try Scratch()
        try scratch.packOK("keygen", "--private-key", "k", "--public-key", "k.pub")
        let mode = try FileManager.default.attributesOfItem(atPath: scratch.path + "/k")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let text = try String(contentsOfFile: scratch.path + "/k.pub", encoding: .utf8)
        #expect(throws: Never.self) { try TrustedKey.parse(text, path: "k.pub") }
        let privateText = try String(contentsOfFile: scratch.path + "/k", encoding: .utf8)
        #expect(ChannelSigningKey(fileText: privateText)?.publicKey().rawRepresentation
                == (try TrustedKey.parse(text, path: "k.pub")).rawRepresentation)
    }

    @Test func keygen_whenKeyExists_failsWithoutReplacingIt() throws {
        let scratch = try Scratch()
        try scratch.packOK("keygen", "--private-key", "k", "--public-key", "k.pub")
        let before = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/k"))
        let result = try scratch.pack("keygen", "--private-key", "k", "--public-key", "other.pub")
        #expect(result.status != 0)
        #expect(result.stderr.contains("already exists"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/k")) == before)
    }

    @Test func verify_ofUnpublishedChannel_failsNamingTheSignature() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        let result = try scratch.pack("verify", "--channel", "channel", "--trusted-keys", "keys")
        #expect(result.status != 0)
        #expect(result.stderr.contains("index.json.sig"))
    }

    @Test func publish_incrementsVersionSetsExpiryAndVerifies() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        var index = try scratch.index()
        #expect(index.version == 1)
        #expect(abs(index.expiresSeconds - Date().timeIntervalSince1970 - 7 * 86_400) < 120)
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key", "--expires-in", "2h")
        index = try scratch.index()
        #expect(index.version == 2)
        #expect(abs(index.expiresSeconds - Date().timeIntervalSince1970 - 7200) < 120)
        let verified = try scratch.packOK("verify", "--channel", "channel", "--trusted-keys", "keys")
        #expect(verified.stdout.contains("is valid: version 2"))
    }

    @Test func publish_whenDurationIsMalformed_failsOnStderr() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        let result = try scratch.pack("publish", "--channel", "channel", "--private-key", "publisher.key", "--expires-in", "1w")
        #expect(result.status != 0)
        #expect(result.stderr.contains("--expires-in"))
        #expect(result.stdout.isEmpty)
    }

    @Test func publish_whenAFileChangedSinceAdded_refusesToSign() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("app.conf", "a=1\n")
        try scratch.packOK("fix", "--channel", "channel", "--id", "f1", "--baseline", "B1", "--file", "app.conf=/etc/app.conf")
        try Data("a=2\n".utf8).write(to: URL(fileURLWithPath: scratch.path + "/channel/fixes/f1/app.conf"))
        let result = try scratch.pack("publish", "--channel", "channel", "--private-key", "publisher.key")
        #expect(result.status != 0)
        #expect(result.stderr.contains("changed since it was added"))
    }

    @Test func verify_whenKeyIsNotTrusted_exitsNonZero() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.packOK("keygen", "--private-key", "other.key", "--public-key", "other.pub")
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "other.key")
        let result = try scratch.pack("verify", "--channel", "channel", "--trusted-keys", "keys")
        #expect(result.status != 0)
        #expect(result.stderr.contains("not trusted"))
    }

    @Test func baselineAndFix_recordDebsAndFilesWithDestinations() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("tool", "#!/bin/sh\n")
        chmod(scratch.path + "/tool", 0o755)
        try scratch.write("app_1.0_amd64.deb", "not really a deb")
        try scratch.packOK("baseline", "--channel", "channel", "--id", "B2", "--unplanned", "--deb", "app_1.0_amd64.deb",
                           "--file", "tool=/usr/local/bin/tool", "--cve", "CVE-2025-7")
        try scratch.packOK("fix", "--channel", "channel", "--id", "f1", "--baseline", "B2", "--file", "tool=/opt/tool")
        let index = try scratch.index()
        guard case let .baseline(id, planned, _, cves, files)? = index.releases.dropFirst().first else { Issue.record("no baseline"); return }
        #expect(id == "B2" && !planned && cves == ["CVE-2025-7"])
        #expect(files.map(\.kind) == [.deb, .file(destination: "/usr/local/bin/tool", mode: 0o755)])
        #expect(files.map(\.file.path) == ["baselines/B2/app_1.0_amd64.deb", "baselines/B2/tool"])
        guard case let .fix(_, baseline, _, _, fixFiles)? = index.releases.dropFirst(2).first else { Issue.record("no fix"); return }
        #expect(baseline == "B2" && fixFiles.first?.kind == .file(destination: "/opt/tool", mode: 0o755))
        try scratch.packOK("publish", "--channel", "channel", "--private-key", "publisher.key")
        try scratch.packOK("verify", "--channel", "channel", "--trusted-keys", "keys")
    }

    @Test func baseline_whenDestinationIsRelative_fails() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        try scratch.write("tool", "x")
        let result = try scratch.pack("baseline", "--channel", "channel", "--id", "B2", "--file", "tool=usr/bin/tool")
        #expect(result.status != 0)
        #expect(result.stderr.contains("is not absolute"))
    }

    @Test func fix_whenBaselineIsUnknown_failsOnStderr() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        let result = try scratch.pack("fix", "--channel", "channel", "--id", "f1", "--baseline", "B7")
        #expect(result.status != 0)
        #expect(result.stderr.contains("Baseline 'B7' is not in"))
    }

    @Test func baseline_whenIDIsReused_fails() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        let result = try scratch.pack("baseline", "--channel", "channel", "--id", "B1")
        #expect(result.status != 0)
        #expect(result.stderr.contains("already in"))
    }

    @Test func list_printsReleasesAndJSON() throws {
        let scratch = try Scratch()
        try scratch.channelWithBaseline()
        #expect(try scratch.packOK("list", "--channel", "channel").stdout.contains("baseline  B1  planned"))
        let json = try scratch.packOK("list", "--channel", "channel", "--json").stdout
        #expect(try ChannelIndex.parse(Array(json.utf8), path: "stdout") == scratch.index())
    }
}
