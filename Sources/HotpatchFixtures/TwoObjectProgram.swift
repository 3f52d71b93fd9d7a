import Artifact
import Foundation

/// A program that maps two targeted libraries (`Fixtures/two_objects_*.c`): libA's `a_value`
/// adds 1 and libB's `b_value` adds 2, so it prints `a=2 b=3`; their fixes add 100 (libA, level 1),
/// 200 (libB) and 300 (libA again, a later level).
public struct TwoObjectProgram: Sendable {
    /// The program (`two_objects_main.c`), linked against both libraries by path.
    public let program: String
    /// libA, unstripped.
    public let libraryA: String
    /// libB, unstripped.
    public let libraryB: String
    /// libA's first fix: `a_value_fixed` adds 100.
    public let fixA: String
    /// libB's fix: `b_value_fixed` adds 200.
    public let fixB: String
    /// libA's second fix: `a_value_fixed` adds 300.
    public let fixA2: String

    /// What the program prints unpatched.
    public static let original = "a=2 b=3"

    /// Builds everything with `builder`. `buildIDs` (hex) gives each library a build-id of its own,
    /// so processes of one suite are never matched by another suite's hotpatches.
    public init(builder: FixtureBuilder, tag: String = "", buildIDs: (a: String, b: String)? = nil) throws {
        func library(_ function: String, add: Int, buildID: String?) throws -> String {
            let flags = ["-O0", "-g", "-shared", "-fPIC", "-fcf-protection=full", "-DFUNCTION=\(function)", "-DADD=\(add)"]
                + (buildID.map { ["-Wl,--build-id=0x" + $0] } ?? [])
            return try builder.build("two_objects_lib.c", flags: flags, suffix: ".so", as: "two-objects-\(function)\(tag)")
        }
        func fix(_ function: String, add: Int, name: String) throws -> String {
            try builder.build("two_objects_patch.c", flags: ["-O2", "-shared", "-fPIC", "-DFIXED=\(function)_fixed", "-DADD=\(add)"],
                              suffix: ".so", as: name + tag)
        }
        libraryA = try library("a_value", add: 1, buildID: buildIDs?.a)
        libraryB = try library("b_value", add: 2, buildID: buildIDs?.b)
        program = try builder.build("two_objects_main.c", flags: ["-O0", "-g", "-pthread", "-Wl,--no-as-needed", libraryA, libraryB],
                                    as: "two-objects\(tag)")
        fixA = try fix("a_value", add: 100, name: "two-objects-fix-a1")
        fixB = try fix("b_value", add: 200, name: "two-objects-fix-b")
        fixA2 = try fix("a_value", add: 300, name: "two-objects-fix-a2")
    }

    /// The hotpatch target redirecting `function` of `library` to `function`_fixed in `patch`,
    /// planned as `hotpatch-pack` plans it.
    public static func target(_ library: String, function: String, patch: String) throws -> HotpatchTarget {
        let plan = try RedirectionPlanner.plan(target: try ELFFile.load(path: library), debugFile: nil,
                                               patchObject: try PatchObject(path: patch),
                                               replacements: [(function, function + "_fixed")], references: [])
        return HotpatchTarget(buildID: plan.buildID, pathHint: library, patchObjectPath: patch,
                              redirections: plan.redirections, references: plan.references)
    }
}
