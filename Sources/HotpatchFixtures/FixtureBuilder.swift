import Artifact
import Crypto
import Engine
import Foundation

/// Compiles the C programs and patch objects under `Fixtures/` with the system C compiler, once per
/// source content (outputs are cached under a folder named by the source's hash).
public struct FixtureBuilder: Sendable {
    /// The folder holding the C sources.
    public let sourceDirectory: String
    /// Where compiled fixtures are cached.
    public let outputDirectory: String

    /// Uses the repository's `Fixtures/` and a cache under the system temp folder.
    public init(sourceDirectory: String? = nil, outputDirectory: String? = nil) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        self.sourceDirectory = sourceDirectory ?? root.appendingPathComponent("Fixtures").path
        self.outputDirectory = outputDirectory ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("hotpatch-fixtures")
    }

    /// Compiles `source` (a file in `Fixtures/`) with `flags` and returns the output's path. The
    /// output name carries the hash of source and flags, so each distinct build has its own file.
    public func build(_ source: String, flags: [String], suffix: String = "", as name: String? = nil) throws -> String {
        let sourcePath = (sourceDirectory as NSString).appendingPathComponent(source)
        let text = try Data(contentsOf: URL(fileURLWithPath: sourcePath))
        var hasher = SHA256()
        hasher.update(data: text)
        hasher.update(data: Data(flags.joined(separator: " ").utf8))
        let digest = Hex.encode(hasher.finalize()).prefix(16)
        let stem = name ?? (source as NSString).deletingPathExtension
        let output = (outputDirectory as NSString).appendingPathComponent("\(stem)-\(digest)\(suffix)")
        if FileManager.default.fileExists(atPath: output) { return output }
        try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        let temporary = output + ".tmp\(getpid())"
        try Self.compile(sourcePath, to: temporary, flags: flags)
        try FileManager.default.moveItem(atPath: temporary, toPath: output)
        return output
    }

    /// Writes the C program `text` to `output` + ".c" and compiles it to `output` with `flags`
    /// (uncached: for a test's own small programs, built into its temporary directory).
    @discardableResult
    public static func compile(text: String, to output: String, flags: [String]) throws -> String {
        let sourcePath = output + ".c"
        try Data(text.utf8).write(to: URL(fileURLWithPath: sourcePath))
        try compile(sourcePath, to: output, flags: flags)
        return output
    }

    /// Compiles the C file at `sourcePath` to `output` with the system compiler.
    private static func compile(_ sourcePath: String, to output: String, flags: [String]) throws {
        try Program.succeed("cc", flags + ["-o", output, sourcePath])
    }

    /// A multi-threaded victim executable (unstripped, -O0 so every function has a real prologue).
    public func victim() throws -> String {
        try build("victim.c", flags: ["-O0", "-g", "-pthread", "-fno-inline"])
    }

    /// A program that runs another (its arguments) by `execv` from a second thread, not its leader.
    public func threadExecutor() throws -> String {
        try build("thread_exec.c", flags: ["-O1", "-pthread"])
    }

    /// The victim with its symbols stripped, as production binaries ship; same build-id.
    public func strippedVictim() throws -> String {
        let unstripped = try victim()
        let stripped = unstripped + "-stripped"
        if !FileManager.default.fileExists(atPath: stripped) {
            try Program.succeed("strip", ["-o", stripped + ".tmp", unstripped])
            try FileManager.default.moveItem(atPath: stripped + ".tmp", toPath: stripped)
        }
        return stripped
    }

    /// A patch object built as publishers build them: `cc -shared -fPIC`.
    public func patchObject(_ source: String) throws -> String {
        try build(source, flags: ["-O2", "-shared", "-fPIC"], suffix: ".so")
    }
}

/// The victim's hotpatches, built the way `hotpatch-pack` builds them (RedirectionPlanner over the
/// unstripped victim and a real patch object).
public struct VictimHotpatches: Sendable {
    /// Level 1: parse_length clamped to 64, banner 2.
    public let level1: Hotpatch
    /// Level 2: parse_length clamped to 32 through libc and the static helper_scale; banner dropped.
    public let level2: Hotpatch

    /// Plans both levels against `victimPath` (unstripped).
    public init(builder: FixtureBuilder, victimPath: String) throws {
        let target = try ELFFile.load(path: victimPath)
        let first = try builder.patchObject("patch_level1.c")
        let second = try builder.patchObject("patch_level2.c")
        let plan1 = try RedirectionPlanner.plan(
            target: target, debugFile: nil, patchObject: PatchObject(path: first),
            replacements: [("parse_length", "parse_length_fixed"), ("banner_version", "banner_version_fixed")], references: [])
        let plan2 = try RedirectionPlanner.plan(
            target: target, debugFile: nil, patchObject: PatchObject(path: second),
            replacements: [("parse_length", "parse_length_fixed2")], references: ["helper_scale"])
        level1 = Hotpatch(id: "victim-hp1", baseline: "demo-1", level: 1, targets: [
            HotpatchTarget(buildID: plan1.buildID, pathHint: victimPath, patchObjectPath: first,
                           redirections: plan1.redirections, references: plan1.references)])
        level2 = Hotpatch(id: "victim-hp2", baseline: "demo-1", level: 2, targets: [
            HotpatchTarget(buildID: plan2.buildID, pathHint: victimPath, patchObjectPath: second,
                           redirections: plan2.redirections, references: plan2.references)])
    }
}
