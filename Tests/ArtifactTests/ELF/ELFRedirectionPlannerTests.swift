import Foundation
import Testing
@testable import Artifact

@Suite struct ELFRedirectionPlannerTests {
    /// A target with a 1-byte function, a 6-byte one and symbols named like GCC clones of `compute`.
    static let target = FixtureSource.program + """

    __asm__(".text\\n.globl one_byte\\n.type one_byte,@function\\none_byte: ret\\n.size one_byte,1\\n");
    __attribute__((noinline)) int clone_a(int x) __asm__("compute.isra.0");
    int clone_a(int x) { return x + 11; }
    __attribute__((noinline)) int clone_b(int x) __asm__("compute.constprop.0.isra.0");
    int clone_b(int x) { return x + 12; }
    __attribute__((noinline)) int clone_c(int x) __asm__("compute.cold");
    int clone_c(int x) { return x + 13; }
    __attribute__((noinline)) int not_clone(int x) __asm__("compute.other");
    int not_clone(int x) { return x + 14; }
    """

    struct Fixture {
        let dir: FixtureDirectory
        let target: ELFFile
        let debug: ELFFile
        let patch: PatchObject
        let unstripped: ELFFile
    }

    static func fixture(buildID: String = "sha1") throws -> Fixture {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: target, arguments: ["-O1", "-g", "-Wl,--build-id=\(buildID)"])
        let unstripped = try ELFFile.load(path: exe)
        try dir.run("/usr/bin/objcopy", ["--only-keep-debug", exe, dir.path("prog.debug")])
        try dir.run("/usr/bin/strip", [exe])
        let patchPath = try dir.compile("patch.so", source: FixtureSource.patch, arguments: ["-shared", "-fPIC", "-O1"])
        return Fixture(dir: dir, target: try ELFFile.load(path: exe), debug: try ELFFile.load(path: dir.path("prog.debug")),
                       patch: try PatchObject(path: patchPath), unstripped: unstripped)
    }

    static func expectInvalid(_ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
                              _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected invalidHotpatch containing '\(fragment)', got success", sourceLocation: sourceLocation)
        } catch let ArtifactError.invalidHotpatch(_, reason) {
            #expect(reason.contains(fragment), "reason was: \(reason)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected invalidHotpatch containing '\(fragment)', got \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func plan_withDebugFileOfStrippedTarget_usesSymtabOffsetsAndHashesTargetBytes() throws {
        let f = try Self.fixture()
        let plan = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                               replacements: [("compute", "compute_fixed")], references: ["counter"])
        let symbol = try #require(try f.unstripped.symbols().first { $0.name == "compute" })
        #expect(plan.buildID == f.target.buildID)
        let redirection = try #require(plan.redirections.first)
        #expect(redirection == FunctionRedirection(symbol: "compute", offset: symbol.value, size: symbol.size,
                                                   sha256: redirection.sha256, replacement: "compute_fixed"))
        let bytesPath = f.dir.path("compute.bin")
        try Data(try f.target.bytes(atVirtualAddress: symbol.value, count: Int(symbol.size))).write(to: URL(fileURLWithPath: bytesPath))
        let sum = try f.dir.output("/usr/bin/sha256sum", [bytesPath])
        #expect(sum.hasPrefix(redirection.sha256 + " "))
        let counter = try #require(try f.unstripped.symbols().first { $0.name == "counter" })
        #expect(plan.references == [TargetSymbolReference(symbol: "counter", offset: counter.value)])
        #expect(plan.notes.contains { $0.contains("inlined copies of compute") && $0.contains("DWARF") })
    }

    @Test func plan_notesEachGCCCloneButNotLookalikes() throws {
        let f = try Self.fixture()
        let plan = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                               replacements: [("compute", "compute_fixed")], references: [])
        #expect(plan.notes.contains { $0.hasPrefix("compute.isra.0 ") && $0.contains("escape the patch") })
        #expect(plan.notes.contains { $0.hasPrefix("compute.constprop.0.isra.0 ") && $0.contains("escape the patch") })
        #expect(plan.notes.contains { $0.hasPrefix("compute.cold ") })
        #expect(!plan.notes.contains { $0.contains("compute.other") })
        #expect(RedirectionPlanner.cloneSuffix("part.3.cold") == ["part", "cold"])
        #expect(RedirectionPlanner.cloneSuffix("cold.12") == ["cold"])
        #expect(RedirectionPlanner.cloneSuffix("isra") == nil)
        #expect(RedirectionPlanner.cloneSuffix("constprop.x") == nil)
    }

    @Test func plan_whenFunctionIsShorterThanJump_refusesItAndNotesShortOnes() throws {
        let f = try Self.fixture()
        Self.expectInvalid("one_byte is 1 bytes, shorter than the 5-byte jump") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                            replacements: [("one_byte", "compute_fixed")], references: [])
        }
        let tiny = try #require(try f.debug.symbols().first { $0.name == "tiny" })
        try #require(tiny.size >= 5 && tiny.size < 14)
        let plan = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                               replacements: [("tiny", "compute_fixed")], references: [])
        #expect(plan.notes.contains { $0.contains("needs the patch object mapped within ±2 GiB for a 5-byte jump") })
    }

    @Test func plan_whenFunctionsAreUnknown_listsThemAll() throws {
        let f = try Self.fixture()
        Self.expectInvalid("unknown functions nope_one, nope_two") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                            replacements: [("nope_one", "compute_fixed"), ("compute", "compute_fixed"),
                                                           ("nope_two", "compute_fixed")], references: [])
        }
    }

    @Test func plan_whenStrippedTargetHasNoDebugFile_cannotFindLocalFunctions() throws {
        let f = try Self.fixture()
        Self.expectInvalid("unknown function compute") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: nil, patchObject: f.patch,
                                            replacements: [("compute", "compute_fixed")], references: [])
        }
    }

    @Test func plan_whenTargetHasNoBuildID_refusesIt() throws {
        let f = try Self.fixture(buildID: "none")
        #expect(f.target.buildID == nil)
        Self.expectInvalid("no GNU build-id") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: nil, patchObject: f.patch,
                                            replacements: [("compute", "compute_fixed")], references: [])
        }
    }

    @Test func plan_whenDebugFileBelongsToAnotherBuild_refusesIt() throws {
        let f = try Self.fixture()
        let other = try Self.fixture(buildID: "md5")
        Self.expectInvalid("debug file") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: other.debug, patchObject: f.patch,
                                            replacements: [("compute", "compute_fixed")], references: [])
        }
    }

    @Test func plan_whenReplacementIsNotExportedByPatch_refusesIt() throws {
        let f = try Self.fixture()
        Self.expectInvalid("replacement fixed_state for compute is not a function exported") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                            replacements: [("compute", "fixed_state")], references: [])
        }
        Self.expectInvalid("replacement missing_fn") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                            replacements: [("compute", "missing_fn")], references: [])
        }
    }

    @Test func plan_whenReferenceIsUnneededOrUnknown_refusesIt() throws {
        let f = try Self.fixture()
        Self.expectInvalid("reference helper is not needed") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                            replacements: [("compute", "compute_fixed")], references: ["helper"])
        }
        Self.expectInvalid("reference puts is not defined in the target") {
            _ = try RedirectionPlanner.plan(target: f.target, debugFile: f.debug, patchObject: f.patch,
                                            replacements: [("compute", "compute_fixed")], references: ["puts"])
        }
    }

    @Test func plan_whenNameHasSeveralLocalDefinitions_refusesItAsAmbiguous() throws {
        let dir = try FixtureDirectory()
        var extra: [String] = []
        for unit in ["first", "second"] {
            let path = dir.path("\(unit).c")
            try "static int __attribute__((noinline)) helper(int x) { return x * x - 100; }\nint use_\(unit)(int x) { return helper(x) * 3; }\n"
                .write(toFile: path, atomically: true, encoding: .utf8)
            extra.append(path)
        }
        let exe = try dir.compile("prog", source: FixtureSource.program, arguments: ["-O1"] + extra)
        let patch = try PatchObject(path: try dir.compile("patch.so", source: FixtureSource.patch, arguments: ["-shared", "-fPIC"]))
        let target = try ELFFile.load(path: exe)
        try #require(try target.symbols().filter { $0.name == "helper" }.count == 2)
        Self.expectInvalid("helper is ambiguous") {
            _ = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                            replacements: [("helper", "compute_fixed")], references: [])
        }
    }

    @Test func plan_forStrippedSharedLibrary_usesDynsymExports() throws {
        let dir = try FixtureDirectory()
        let lib = try dir.compile("libz.so", source: FixtureSource.library, arguments: ["-shared", "-fPIC", "-O1"])
        try dir.run("/usr/bin/strip", [lib])
        let target = try ELFFile.load(path: lib)
        let patch = try PatchObject(path: try dir.compile("patch.so", source: FixtureSource.patch, arguments: ["-shared", "-fPIC"]))
        let plan = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                               replacements: [("lib_add", "compute_fixed")], references: [])
        let add = try #require(try target.dynamicSymbols().first { $0.name == "lib_add" })
        #expect(plan.redirections.map(\.offset) == [add.value])
        #expect(plan.redirections.map(\.size) == [add.size])
    }
}
