import Foundation
import Testing
@testable import Artifact

/// How a patch object reaches the target's state and libc's indirect functions: thread-local
/// relocations, references to static data and static locals, and IFUNC targets.
@Suite struct ELFTargetStateTests {
    static let threadLocalPatch = """
    extern __thread long gd_var;
    extern __thread long ie_var __attribute__((tls_model("initial-exec")));
    extern long plain_var;
    long get(void) { return gd_var + ie_var + plain_var; }
    """

    /// A target with every kind of non-exported state a fix touches.
    static let stateTarget = """
    static int limit = 7;
    static __thread long tls_local;
    __attribute__((noinline)) static int scale(int v) { return v * limit; }
    __attribute__((noinline)) int next_ticket(void) { static int counter; tls_local++; return ++counter + scale(1); }
    int main(int argc, char **argv) { limit = argc + 6; return next_ticket(); }
    """

    /// A patch reaching that state by the names its `.symtab` gives.
    static let statePatch = """
    extern int counter_ref __asm__("counter.0");
    extern int limit;
    extern int scale(int v);
    extern __thread long tls_local;
    int next_ticket_fixed(void) { tls_local++; return counter_ref += scale(limit); }
    """

    static func patch(_ dir: FixtureDirectory, _ source: String, name: String = "patch.so") throws -> PatchObject {
        try PatchObject(path: dir.compile(name, source: source, arguments: ["-shared", "-fPIC", "-O1"]))
    }

    static func offset(of type: UInt32, symbol: String, in patch: PatchObject) throws -> UInt64 {
        try #require(try patch.elf.relocations().first { $0.type == type && $0.symbol?.name == symbol }).offset
    }

    // MARK: Thread-local relocations

    @Test func requiredSymbols_markTheTargetsThreadLocalsAsSuch() throws {
        let patch = try Self.patch(FixtureDirectory(), Self.threadLocalPatch)
        #expect(Set(patch.requiredSymbols.filter(\.isThreadLocal).map(\.name)) == ["gd_var", "ie_var"])
        #expect(patch.requiredSymbols.contains { $0.name == "plain_var" && !$0.isThreadLocal })
    }

    @Test func relocationWrites_forTargetThreadLocals_writeModuleIDBlockOffsetAndThreadPointerOffset() throws {
        let patch = try Self.patch(FixtureDirectory(), Self.threadLocalPatch)
        let base: UInt64 = 0x7f00_0000_0000
        let bindings: [String: SymbolBinding] = [
            "gd_var": .threadLocal(ThreadLocalBinding(moduleID: 3, offset: 0x10, staticBlockOffset: 0x80, object: "lib")),
            "ie_var": .threadLocal(ThreadLocalBinding(moduleID: 3, offset: 0x18, staticBlockOffset: 0x80, object: "lib")),
            "plain_var": .address(0x5555_0000_4000),
        ]
        // The rest (__tls_get_addr, the compiler's weak references) are ordinary functions.
        let writes = try patch.relocationWrites(loadBase: base, bind: { bindings[$0.name] ?? .address(0x7f22_0000_1000) })
        func value(_ type: UInt32, _ symbol: String) throws -> UInt64? {
            let address = base + (try Self.offset(of: type, symbol: symbol, in: patch))
            return writes.first { $0.address == address }?.value
        }
        #expect(try value(16, "gd_var") == 3)
        #expect(try value(17, "gd_var") == 0x10)
        #expect(try value(18, "ie_var") == UInt64(bitPattern: 0x18 - 0x80))
        #expect(try value(6, "plain_var") == 0x5555_0000_4000)
    }

    @Test func relocationWrites_whenInitialExecTargetIsNotInStaticTLS_refusesAndNamesTheModelToUse() throws {
        let patch = try Self.patch(FixtureDirectory(), Self.threadLocalPatch)
        let dynamic = SymbolBinding.threadLocal(ThreadLocalBinding(moduleID: 5, offset: 0, staticBlockOffset: nil, object: "/lib/late.so"))
        expectUnsupported("by the initial-exec model, but that object's thread-locals are not in static TLS") {
            _ = try patch.relocationWrites(loadBase: 0x10000, bind: { $0.isThreadLocal ? dynamic : .address(0x1000) })
        }
        // Global-dynamic needs no static block.
        let onlyDynamic = try Self.patch(FixtureDirectory(), "extern __thread long gd_var; long get(void) { return gd_var; }\n")
        #expect(try onlyDynamic.relocationWrites(loadBase: 0x10000, bind: { $0.isThreadLocal ? dynamic : .address(0x1000) })
            .contains { $0.value == 5 })
    }

    @Test func relocationWrites_whenThreadLocalnessDisagreesWithTheTarget_refuses() throws {
        let patch = try Self.patch(FixtureDirectory(), Self.threadLocalPatch)
        let local = SymbolBinding.threadLocal(ThreadLocalBinding(moduleID: 1, offset: 0, staticBlockOffset: 0x40, object: "exe"))
        expectUnsupported("is not a thread-local variable in the target") {
            _ = try patch.relocationWrites(loadBase: 0x10000, bind: { _ in .address(0x1000) })
        }
        expectUnsupported("which is a thread-local variable in the target; declare it __thread") {
            _ = try patch.relocationWrites(loadBase: 0x10000, bind: { _ in local })
        }
    }

    // MARK: References to static data, static locals and thread-locals

    struct StateFixture {
        let dir: FixtureDirectory
        let unstripped: ELFFile
        let stripped: ELFFile
        let debug: ELFFile
    }

    static func stateFixture() throws -> StateFixture {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: stateTarget, arguments: ["-O1", "-Wl,--build-id"])
        let unstripped = try ELFFile.load(path: exe)
        try dir.run("/usr/bin/objcopy", ["--only-keep-debug", exe, dir.path("prog.debug")])
        try dir.run("/usr/bin/strip", [exe])
        return StateFixture(dir: dir, unstripped: unstripped, stripped: try ELFFile.load(path: exe),
                            debug: try ELFFile.load(path: dir.path("prog.debug")))
    }

    @Test func plan_referencesStaticLocalStaticGlobalStaticFunctionAndThreadLocalByTheirSymbolTableNames() throws {
        let f = try Self.stateFixture()
        let patch = try Self.patch(f.dir, Self.statePatch)
        let plan = try RedirectionPlanner.plan(target: f.stripped, debugFile: f.debug, patchObject: patch,
                                               replacements: [("next_ticket", "next_ticket_fixed")],
                                               references: ["counter.0", "limit", "scale", "tls_local"])
        let symbols = try f.unstripped.symbols()
        func value(_ name: String) throws -> UInt64 { try #require(symbols.first { $0.name == name }).value }
        let expected = [
            TargetSymbolReference(symbol: "counter.0", offset: try value("counter.0")),
            TargetSymbolReference(symbol: "limit", offset: try value("limit")),
            TargetSymbolReference(symbol: "scale", offset: try value("scale")),
            TargetSymbolReference(symbol: "tls_local", offset: try value("tls_local"), kind: .threadLocal),
        ]
        #expect(plan.references == expected)
        #expect(symbols.first { $0.name == "tls_local" }?.kind == .tls)
    }

    @Test func plan_whenPatchDisagreesAboutThreadLocalness_refusesTheReference() throws {
        let f = try Self.stateFixture()
        let notThreadLocal = try Self.patch(f.dir, "extern long tls_local; long next_ticket_fixed(void) { return tls_local; }\n", name: "a.so")
        ELFRedirectionPlannerTests.expectInvalid("reference tls_local is a thread-local variable of the target, but patch object") {
            _ = try RedirectionPlanner.plan(target: f.stripped, debugFile: f.debug, patchObject: notThreadLocal,
                                            replacements: [("next_ticket", "next_ticket_fixed")], references: ["tls_local"])
        }
        let wronglyThreadLocal = try Self.patch(f.dir, "extern __thread int limit; int next_ticket_fixed(void) { return limit; }\n", name: "b.so")
        ELFRedirectionPlannerTests.expectInvalid("reference limit is not a thread-local variable of the target") {
            _ = try RedirectionPlanner.plan(target: f.stripped, debugFile: f.debug, patchObject: wronglyThreadLocal,
                                            replacements: [("next_ticket", "next_ticket_fixed")], references: ["limit"])
        }
    }

    @Test func plan_whenStaticLocalNameIsInSeveralFiles_refusesNamingEachFile() throws {
        let dir = try FixtureDirectory()
        var units: [String] = []
        for unit in ["first", "second"] {
            let path = dir.path("\(unit).c")
            try "int tick_\(unit)(void) { static int counter; return ++counter; }\n".write(toFile: path, atomically: true, encoding: .utf8)
            units.append(path)
        }
        let exe = try dir.compile("prog", source: Self.stateTarget, arguments: ["-O1", "-Wl,--build-id"] + units)
        let target = try ELFFile.load(path: exe)
        try #require(try target.symbols().filter { $0.name == "counter.0" }.count == 3)
        let patch = try Self.patch(dir, Self.statePatch)
        ELFRedirectionPlannerTests.expectInvalid("counter.0 is ambiguous") {
            _ = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                            replacements: [("next_ticket", "next_ticket_fixed")], references: ["counter.0"])
        }
        for unit in ["first.c)", "second.c)"] {
            ELFRedirectionPlannerTests.expectInvalid(unit) {
                _ = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                                replacements: [("next_ticket", "next_ticket_fixed")], references: ["counter.0"])
            }
        }
    }

    // MARK: A target function that is a GNU indirect function

    static let indirectTarget = """
    __attribute__((noinline, used)) static int pick_fast(int x) __asm__("__pick_avx2");
    __attribute__((noinline, used)) static int pick_fast(int x) { return x * 3 + 1; }
    __attribute__((noinline, used)) static int pick_slow(int x) __asm__("__pick_sse2");
    __attribute__((noinline, used)) static int pick_slow(int x) { return x * 3 + 1 + (x & 0); }
    static void *pick_resolver(void) { return (void *)pick_fast; }
    int pick(int x) __attribute__((ifunc("pick_resolver")));
    int main(int argc, char **argv) { return pick(argc); }
    """

    @Test func plan_whenTargetFunctionIsAnIndirectFunction_refusesNamingItsImplementations() throws {
        let dir = try FixtureDirectory()
        let target = try ELFFile.load(path: dir.compile("prog", source: Self.indirectTarget, arguments: ["-O1", "-Wl,--build-id"]))
        let patch = try Self.patch(dir, "int pick_fixed(int x) { return x * 3 + 2; }\n")
        ELFRedirectionPlannerTests.expectInvalid("pick is a GNU indirect function") {
            _ = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                            replacements: [("pick", "pick_fixed")], references: [])
        }
        ELFRedirectionPlannerTests.expectInvalid("redirect the implementations it may select instead, each named as a function (candidates in the symbol tables: __pick_avx2, __pick_sse2)") {
            _ = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                            replacements: [("pick", "pick_fixed")], references: [])
        }
    }

    @Test func plan_whenPublisherNamesTheImplementations_redirectsThemLikeAnyFunction() throws {
        let dir = try FixtureDirectory()
        let target = try ELFFile.load(path: dir.compile("prog", source: Self.indirectTarget, arguments: ["-O1", "-Wl,--build-id"]))
        let patch = try Self.patch(dir, "int pick_fixed(int x) { return x * 3 + 2; }\n")
        let plan = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                               replacements: [("__pick_avx2", "pick_fixed"), ("__pick_sse2", "pick_fixed")],
                                               references: [])
        let symbols = try target.symbols()
        #expect(plan.redirections.map(\.offset) == ["__pick_avx2", "__pick_sse2"].compactMap { name in
            symbols.first { $0.name == name }?.value
        })
        #expect(plan.redirections.count == 2)
    }

    @Test func plan_whenTargetIsGlibcsStrlen_refusesAndSaysWhereItsImplementationsAreNamed() throws {
        let libc = try ELFFile.load(path: "/lib/x86_64-linux-gnu/libc.so.6")
        let strlen = try #require(try libc.dynamicSymbols().first { $0.name == "strlen" })
        try #require(strlen.kind == .gnuIndirectFunction)
        let patch = try Self.patch(FixtureDirectory(), "unsigned long strlen_fixed(const char *s) { unsigned long n = 0; while (s[n]) n++; return n; }\n")
        // The shipped libc is stripped: its implementations are named only in the debug file.
        ELFRedirectionPlannerTests.expectInvalid("strlen is a GNU indirect function: its symbol is the resolver") {
            _ = try RedirectionPlanner.plan(target: libc, debugFile: nil, patchObject: patch,
                                            replacements: [("strlen", "strlen_fixed")], references: [])
        }
        ELFRedirectionPlannerTests.expectInvalid("find them in the target's .symtab or its debug file (readelf -sW FILE | grep strlen)") {
            _ = try RedirectionPlanner.plan(target: libc, debugFile: nil, patchObject: patch,
                                            replacements: [("strlen", "strlen_fixed")], references: [])
        }
    }
}
