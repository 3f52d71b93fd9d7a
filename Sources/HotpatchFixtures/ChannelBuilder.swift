import Foundation

/// Builds a real signed channel with the `hotpatch-pack` binary, as a publisher would: keys,
/// hotpatches of the victim, baselines, publication.
public final class ChannelBuilder: @unchecked Sendable {
    /// The channel directory.
    public let channel: String
    /// The directory of trusted public keys (the agent's `trusted_keys`).
    public let trustedKeys: String
    /// The private key publishing signs with.
    public let privateKey: String
    private let pack: String

    /// Creates keys and an empty channel under `root`, using the `hotpatch-pack` at `packBinary`.
    public init(root: String, packBinary: String) throws {
        pack = packBinary
        channel = root + "/channel"
        trustedKeys = root + "/keys"
        privateKey = root + "/publisher.key"
        try FileManager.default.createDirectory(atPath: trustedKeys, withIntermediateDirectories: true)
        chmod(root, 0o755)
        chmod(trustedKeys, 0o755)
        try run(["keygen", "--private-key", privateKey, "--public-key", trustedKeys + "/publisher.pub"])
        try run(["init", "--channel", channel])
    }

    /// One object a hotpatch release fixes: the object (unstripped), its patch object, and the
    /// functions redirected (symbol → replacement).
    public struct Fix: Sendable {
        /// The targeted object.
        public var target: String
        /// The patch object.
        public var patch: String
        /// Each redirected function and its replacement in `patch`.
        public var replacements: [String: String]

        /// A fix of `target` by `patch`.
        public init(target: String, patch: String, replacements: [String: String]) {
            self.target = target
            self.patch = patch
            self.replacements = replacements
        }
    }

    /// Adds a hotpatch release built from `target` (unstripped) and the patch object `patch`.
    public func addHotpatch(id: String, baseline: String, level: Int, target: String, patch: String,
                            replacements: [String: String], references: [String] = [], cves: [String] = [],
                            description: String = "") throws {
        try addHotpatch(id: id, baseline: baseline, level: level, fixing: [Fix(target: target, patch: patch, replacements: replacements)],
                        references: references, cves: cves, description: description)
    }

    /// Adds a hotpatch release fixing each object of `fixes` (one release, several objects).
    public func addHotpatch(id: String, baseline: String, level: Int, fixing fixes: [Fix], references: [String] = [],
                            cves: [String] = [], description: String = "") throws {
        var arguments = ["hotpatch", "--channel", channel, "--id", id, "--baseline", baseline, "--level", "\(level)"]
        for fix in fixes {
            arguments += ["--target", fix.target, "--patch", fix.patch]
            for (symbol, replacement) in fix.replacements.sorted(by: { $0.key < $1.key }) {
                arguments += ["--replace", "\(symbol)=\(replacement)"]
            }
        }
        for reference in references { arguments += ["--ref", reference] }
        for cve in cves { arguments += ["--cve", cve] }
        if !description.isEmpty { arguments += ["--description", description] }
        try run(arguments)
    }

    /// Adds a baseline release installing `files` (source → absolute destination).
    public func addBaseline(id: String, planned: Bool = true, files: [String: String] = [:], debs: [String] = [],
                            description: String = "") throws {
        var arguments = ["baseline", "--channel", channel, "--id", id, planned ? "--planned" : "--unplanned"]
        for (source, destination) in files.sorted(by: { $0.key < $1.key }) { arguments += ["--file", "\(source)=\(destination)"] }
        for deb in debs { arguments += ["--deb", deb] }
        if !description.isEmpty { arguments += ["--description", description] }
        try run(arguments)
    }

    /// Signs and publishes the index (version + 1).
    public func publish(expiresIn: String = "7d") throws {
        try run(["publish", "--channel", channel, "--private-key", privateKey, "--expires-in", expiresIn])
    }

    /// Runs hotpatch-pack with `arguments` and returns its standard output; throws with what it
    /// printed when it fails.
    @discardableResult
    public func run(_ arguments: [String]) throws -> String {
        try Program.succeed(pack, arguments).stdout
    }

    /// The built products folder of this package (where hotpatch-pack, hotpatch-agent and agentctl
    /// are), found beside the running test bundle or executable.
    public static func productsDirectory() -> String {
        let candidates = [Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL,
                          URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("hotpatch-pack").path) {
            return candidate.path
        }
        return candidates[0].path
    }
}
