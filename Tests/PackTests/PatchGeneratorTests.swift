import Artifact
import Engine
import Foundation
import LinuxSystem
@testable import Pack
import Testing

/// One generator case: a small C library as released and as fixed, each compiled the way the build
/// driver's compiler wrapper compiles (`-ffunction-sections -fdata-sections`) and linked into a
/// released-like shared object.
final class GeneratorCase {
    let scratch: Scratch
    var path: String { scratch.path }
    /// The source files, compiled in this order.
    let files: [String]
    /// The folder whose `libcase.so` stands for the released object.
    let releasedFolder: String

    /// Compiles `original` and `patched` (both as `lib.c`, so they carry the same STT_FILE) and links each into `libcase.so`.
    convenience init(original: String, patched: String) throws {
        try self.init(files: ["lib.c": (original, patched)])
    }

    /// Compiles each file's original and patched text into `orig/` and `patched/` and links each
    /// folder's objects into `libcase.so`; with `released`, the released object is built apart, in
    /// `released/`, from those texts (a release that is not the source the builds start from);
    /// `flags` are added to every compile (`-g` for DWARF).
    init(files: [String: (original: String, patched: String)], released: [String: String]? = nil, executable: Bool = false,
         flags: String = "") throws {
        scratch = try Scratch()
        self.files = files.keys.sorted()
        releasedFolder = released == nil ? "orig" : "released"
        var folders = [("orig", files.mapValues(\.original)), ("patched", files.mapValues(\.patched))]
        if let released { folders.append(("released", released)) }
        for (folder, sources) in folders {
            try Shell.sh("mkdir -p \(folder) work", in: path)
            for (file, text) in sources {
                try scratch.write("\(folder)/\(file)", text)
                try Shell.sh("\(Self.compiler(for: file)) -c -O2 \(flags) \(executable ? "-fPIE" : "-fPIC") -ffunction-sections -fdata-sections \(file) -o \(Self.objectName(file))",
                             in: "\(path)/\(folder)")
            }
            // An executable target keeps the name: the generator only reads what it is.
            let linker = sources.keys.contains { $0.hasSuffix(".cpp") } ? "c++" : "cc"
            try Shell.sh("\(linker) \(executable ? "-pie" : "-shared") -Wl,--build-id -o libcase.so *.o", in: "\(path)/\(folder)")
        }
    }

    /// `lib.c` → `lib.o`, `lib.cpp` → `lib.o`.
    static func objectName(_ file: String) -> String {
        String(file[..<(file.lastIndex(of: ".") ?? file.endIndex)]) + ".o"
    }

    /// C++ for `.cpp` files, C for the rest.
    static func compiler(for file: String) -> String {
        file.hasSuffix(".cpp") ? "c++" : "cc"
    }

    /// What the build driver hands the generator for `libcase.so`.
    var builds: TargetBuilds {
        func build(_ folder: String) -> SourceBuild {
            SourceBuild(root: "\(path)/\(folder)", compiledObjects: files.map { file in
                let object = Self.objectName(file)
                return CompiledObject(objectPath: "\(path)/\(folder)/\(object)", sourcePath: "\(path)/\(folder)/\(file)", relativePath: object)
            })
        }
        return TargetBuilds(releasedPath: "\(path)/\(releasedFolder)/libcase.so", debugFilePath: nil, originalObjectPath: "\(path)/orig/libcase.so",
                            original: build("orig"), patchedObjectPath: "\(path)/patched/libcase.so", patched: build("patched"),
                            workDirectory: "\(path)/work")
    }

    /// Generates the patch; a refusal fails the test with its message.
    func generate() throws -> GeneratedPatch {
        do { return try generatePatch(for: builds) } catch {
            Issue.record("generation refused: \(error)")
            throw error
        }
    }

    /// The refusal's message, or nil when the generation succeeded.
    func refusal() -> String? {
        do { _ = try generatePatch(for: builds); return nil } catch { return error.description }
    }

    /// A program linked against the released library that prints `value=CALL` every 20 ms.
    func program(calling call: String, declaring declaration: String) throws -> String {
        try scratch.write("main.c", """
            #include <stdio.h>
            #include <unistd.h>
            \(declaration);
            int main(void) {
                printf("ready\\n");
                fflush(stdout);
                for (;;) { printf("value=%d\\n", \(call)); fflush(stdout); usleep(20000); }
            }
            """)
        try Shell.sh("cc -O1 -o main main.c -L \(releasedFolder) -lcase -Wl,-rpath,\(path)/\(releasedFolder)", in: path)
        return "\(path)/main"
    }

    /// The release target for `patch`, planned and checked as `hotpatch-pack hotpatch` plans and checks one.
    func target(_ patch: GeneratedPatch) throws -> HotpatchTarget {
        let released = try ELFFile.load(path: builds.releasedPath)
        let object = try PatchObject(path: patch.patchObjectPath)
        var plan = try RedirectionPlanner.plan(target: released, debugFile: nil, patchObject: object,
                                               replacements: patch.replacements, references: [])
        plan.references = patch.references
        _ = try PublishChecks.check(target: released, debugFile: nil, patchObject: object, plan: plan, providers: [])
        return HotpatchTarget(buildID: plan.buildID, pathHint: builds.releasedPath, patchObjectPath: patch.patchObjectPath,
                              redirections: plan.redirections, references: plan.references)
    }

    /// Starts `program`, checks it prints `before`, applies `target` live, and checks it then prints `after`.
    func applyLive(_ target: HotpatchTarget, to program: String, before: String, after: String) throws {
        try applyLive(target, to: program, before: before, until: after)
    }

    /// Starts `program`, checks it prints `before`, applies `target` live, and checks it then prints `until` within 5 s.
    func applyLive(_ target: HotpatchTarget, to program: String, before: String, until after: String) throws {
        let process = try RunningProcess(program)
        defer { process.stop() }
        _ = try process.waitForLine(timeout: 10) { $0 == "ready" }
        _ = try process.waitForLine(timeout: 5) { $0 == before }
        let tracer = TracerThread(name: "generator-test")
        defer { tracer.shutdown() }
        let patcher = Patcher()
        let match = try #require(TargetFinder(cache: patcher.cache).find(buildIDs: [target.buildID], in: ProcessID(process.pid)).first)
        var report = try tracer.perform { patcher.reconcile(match, desired: target, known: [target]) }
        for _ in 0..<20 {
            guard case .busy = report.outcome else { break }
            Thread.sleep(forTimeInterval: 0.01)
            report = try tracer.perform { patcher.reconcile(match, desired: target, known: [target]) }
        }
        #expect(report.outcome == .applied, "\(report.outcome)")
        _ = try process.freshLine()
        #expect(try process.waitForLine(timeout: 5) { $0 == after } == after)
        #expect(process.isAlive)
    }
}

/// `hotpatch-pack build`'s generator: functions compared modulo relocations, data changes refused,
/// and each generated patch applied to a live process of the released build.
@Suite(.serialized) struct PatchGeneratorTests {
    @Test func boundsCheckAdded_replacesTheFunction_andTheLiveProcessGetsTheCheck() throws {
        let table = "static int table[16] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90};\n"
        let fixture = try GeneratorCase(
            original: table + "int lookup(int i) { return table[i]; }\nint untouched(int i) { return i + 1; }\n",
            patched: table + "int lookup(int i) { if (i < 0 || i >= 8) return -1; return table[i]; }\nint untouched(int i) { return i + 1; }\n")
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["lookup"])
        // Its unwind table travels with it.
        #expect(try ELFFile.load(path: patch.patchObjectPath).section(named: ".eh_frame") != nil)
        #expect(patch.changes.map(\.kind) == [.changedFunction])
        // The table stays the target's: reached through a reference at its released offset.
        #expect(patch.references.map(\.symbol) == ["table"])
        let program = try fixture.program(calling: "lookup(9)", declaring: "int lookup(int)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=90", after: "value=-1")
    }

    @Test func newHelperFunction_travelsInThePatchObject_andTheChangedCallerUsesIt() throws {
        let fixture = try GeneratorCase(
            original: "int compute(int x) { return x * 3 + 1; }\n",
            patched: """
                static __attribute__((noinline)) int clamp(int x) { return x > 100 ? 100 : x; }
                int compute(int x) { return clamp(x) * 3 + 1; }

                """)
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["compute"])
        #expect(Set(patch.changes.map { "\($0.kind.rawValue) \($0.symbol)" }) == ["changed-function compute", "new-function clamp"])
        let program = try fixture.program(calling: "compute(1000)", declaring: "int compute(int)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=3001", after: "value=301")
    }

    @Test func changedStaticFunction_calledByAnUnchangedExportedOne_isReplacedInPlace() throws {
        let caller = "int run(int x) { return scale(x) + 5; }\n"
        let fixture = try GeneratorCase(
            original: "static __attribute__((noinline)) int scale(int x) { return (x * 2) ^ (x >> 3); }\n" + caller,
            patched: "static __attribute__((noinline)) int scale(int x) { return (x * 3) ^ (x >> 3); }\n" + caller)
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["scale"])
        #expect(patch.changes.map(\.symbol) == ["scale"])
        let program = try fixture.program(calling: "run(10)", declaring: "int run(int)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=26", after: "value=36")
    }

    @Test func changedGlobalInitializer_isRefused_namingTheVariable() throws {
        let fixture = try GeneratorCase(
            original: "int limit = 10;\nint get_limit(void) { return limit; }\n",
            patched: "int limit = 20;\nint get_limit(void) { return limit; }\n")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("limit: global variable limit: its initial value changed"), "\(refusal)")
        #expect(!refusal.contains("nothing to patch"))
    }

    @Test func changedArraySize_isRefused_namingTheVariableAndBothSizes() throws {
        let fixture = try GeneratorCase(
            original: "int slots[4];\nint slot(int i) { return slots[i & 3]; }\n",
            patched: "int slots[8];\nint slot(int i) { return slots[i & 3]; }\n")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("global variable slots: its size changed from 16 to 32 bytes"), "\(refusal)")
    }

    @Test func newStaticLocal_isCarriedInThePatchObject() throws {
        let fixture = try GeneratorCase(
            original: "int tick(int x) { return x * 5 + 1; }\n",
            patched: "int tick(int x) { static int calls; calls += x; return x * 5 + calls; }\n")
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["tick"])
        #expect(patch.references.isEmpty)
        let program = try fixture.program(calling: "tick(1)", declaring: "int tick(int)")
        // The new counter lives in the patch object, counting up from 0 once the patch is in.
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=6", until: "value=9")
    }

    @Test func diffChangingNothingExecutable_isRefused_nothingToPatch() throws {
        let fixture = try GeneratorCase(
            original: "int same(int x) { return x * 7; }\n",
            patched: "/* A comment only. */\nint same(int x) { return x * 7; }\n")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("nothing to patch"), "\(refusal)")
    }

    @Test func objectsBuiltWithLinkTimeOptimisation_areRefused_namingTheObject() throws {
        let fixture = try GeneratorCase(original: "int lto(int x) { return x * 3 + 1; }\n", patched: "int lto(int x) { return x * 3 + 2; }\n")
        try Shell.sh("cc -c -O2 -fPIC -flto -ffunction-sections -fdata-sections lib.c -o lib.o", in: fixture.path + "/patched")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("patched/lib.o was compiled with link-time optimisation (-flto)"), "\(refusal)")
    }

    @Test func changedStaticFunction_whoseNameTwoFilesUse_isRefused_askingForARename() throws {
        let helper = { (factor: Int) in "static __attribute__((noinline)) int helper(int x) { return (x * \(factor)) ^ (x >> 2); }\n" }
        let fixture = try GeneratorCase(files: [
            "one.c": (helper(3) + "int one(int x) { return helper(x); }\n", helper(5) + "int one(int x) { return helper(x); }\n"),
            "two.c": (helper(7) + "int two(int x) { return helper(x); }\n", helper(7) + "int two(int x) { return helper(x); }\n"),
        ])
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("changed function helper (one.o) is defined several times in the released object"), "\(refusal)")
    }

    @Test func newGlobalVariable_isRefused_namingIt() throws {
        let fixture = try GeneratorCase(
            original: "int count_up(int x) { return x + 1; }\n",
            patched: "int seen;\nint count_up(int x) { seen = x; return x + 1; }\n")
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("new global variable seen"), "\(refusal)")
    }

    @Test func diffTouchingTwoObjects_replacesBoth_andACallBetweenThemLandsOnTheReplacement() throws {
        let fixture = try GeneratorCase(files: [
            "front.c": ("int weight(int x);\nint total(int x) { return weight(x) + 1000; }\n",
                        "int weight(int x);\nint total(int x) { return weight(x) + 2000; }\n"),
            "back.c": ("int weight(int x) { return x * 2 + 3; }\n", "int weight(int x) { return x * 4 + 3; }\n"),
        ])
        let patch = try fixture.generate()
        #expect(Set(patch.replacements.map(\.symbol)) == ["total", "weight"])
        let program = try fixture.program(calling: "total(10)", declaring: "int total(int)")
        // 10 * 4 + 3 + 2000: the changed total calls the changed weight's replacement, not the old code.
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=1023", after: "value=2043")
    }

    @Test func changedFunction_callingAHiddenFunctionOfAnotherFile_reachesItThroughAReference() throws {
        let hidden = "__attribute__((visibility(\"hidden\"))) int offset_of(int x) { return (x << 4) ^ 3; }\n"
        let caller = "__attribute__((visibility(\"hidden\"))) int offset_of(int x);\n"
        let fixture = try GeneratorCase(files: [
            "offsets.c": (hidden, hidden),
            "entry.c": (caller + "int entry(int x) { return offset_of(x) + 1; }\n", caller + "int entry(int x) { return offset_of(x) + 2; }\n"),
        ])
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["entry"])
        #expect(patch.references.map(\.symbol) == ["offset_of"])
        let program = try fixture.program(calling: "entry(2)", declaring: "int entry(int)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=36", after: "value=37")
    }

    @Test func executableTarget_changedFunctionUsingItsGlobalsAndLibc_isPatchedLive() throws {
        let program = { (limit: Int) in """
            #include <stdio.h>
            #include <unistd.h>
            int calls;
            static int scale = 7;
            __attribute__((noinline)) int measure(int x) { calls++; return x > \(limit) ? \(limit) : x * scale; }
            int main(void) {
                printf("ready\\n");
                fflush(stdout);
                for (;;) { printf("value=%d\\n", measure(40)); fflush(stdout); usleep(20000); scale = 7 + (calls < 0); }
            }

            """ }
        let fixture = try GeneratorCase(files: ["prog.c": (program(1000), program(30))], executable: true)
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["measure"])
        try fixture.applyLive(try fixture.target(patch), to: "\(fixture.path)/orig/libcase.so", before: "value=280", after: "value=30")
    }

    @Test func changedFunction_whoseReleasedCodeIsNotTheRebuilds_isRefused_sourceDoesNotMatch() throws {
        let fixture = try GeneratorCase(
            files: ["lib.c": ("int price(int x) { return x * 3 + 7; }\n", "int price(int x) { return x * 3 + 9; }\n")],
            released: ["lib.c": "int price(int x) { return x * 5 + 7; }\n"])
        let refusal = try #require(fixture.refusal())
        #expect(refusal.contains("changed function price (lib.o)"), "\(refusal)")
        #expect(refusal.contains("the source does not match the released object"), "\(refusal)")
    }

    @Test func staticVariableReadAndWrittenDirectly_isReachedThroughStubs_andTheTargetsCopyChanges() throws {
        let state = "static int level = 3;\nint get_level(void) { return level; }\nvoid set_level(int x) { level = x; }\n"
        let fixture = try GeneratorCase(
            original: state + "int report(int x) { return x + level; }\n",
            patched: state + "int report(int x) { level += 1; return x * 2 + level; }\n")
        let patch = try fixture.generate()
        #expect(patch.replacements.map(\.symbol) == ["report"])
        #expect(patch.references.map(\.symbol) == ["level"])
        let relocatable = String(patch.patchObjectPath.dropLast(3)) + ".o"
        #expect(try ELFFile.load(path: relocatable).section(named: ".text.hotpatch.stubs") != nil)
        // The replacement counts in the target's own variable, which its unchanged code reads too.
        let program = try fixture.program(
            calling: "probe()",
            declaring: "int report(int); int get_level(void); static int probe(void) { int r = report(10); return r * 1000 + get_level(); }")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=13003", until: "value=30010")
    }

    @Test func changedConstantTable_travelsWithEveryFunctionReadingIt() throws {
        let table = { (last: Int) in "static const int steps[6] = {1, 2, 3, 5, 8, \(last)};\n" }
        let users = "int step(int i) { return steps[i % 6]; }\nint first_steps(void) { return steps[0] + steps[5]; }\n"
        let fixture = try GeneratorCase(original: table(13) + users, patched: table(21) + users)
        let patch = try fixture.generate()
        // Neither function's code changed, but both read the table: both use the new copy.
        #expect(Set(patch.replacements.map(\.symbol)) == ["first_steps", "step"])
        #expect(patch.references.isEmpty)
        let program = try fixture.program(calling: "step(5) * 100 + first_steps()", declaring: "int step(int); int first_steps(void)")
        try fixture.applyLive(try fixture.target(patch), to: program, before: "value=1314", after: "value=2122")
    }
}
