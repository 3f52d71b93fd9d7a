import Crypto
import Testing
@testable import Artifact

/// Functions shorter than the near jump: planned the classic hotpatch way when padding precedes them.
@Suite struct ELFEntryHopPlannerTests {
    /// `padded` is 3 bytes after a function, the assembler's alignment and 8 bytes of `nop`; `reserved` gets its 5 no-ops from GCC's
    /// patchable_function_entry; `cramped` is 3 bytes right after the end of a function.
    static let target = FixtureSource.program + """

    __asm__(".text\\n.globl before_padded\\n.type before_padded,@function\\nbefore_padded: ret\\n.size before_padded,1\\n"
            ".p2align 4\\n.byte 0x90,0x90,0x90,0x90,0x90,0x90,0x90,0x90\\n"
            ".globl padded\\n.type padded,@function\\npadded: xor %eax,%eax\\nret\\n.size padded,3\\n"
            ".globl before_cramped\\n.type before_cramped,@function\\nbefore_cramped: ret\\n.size before_cramped,1\\n"
            ".globl cramped\\n.type cramped,@function\\ncramped: xor %eax,%eax\\nret\\n.size cramped,3\\n"
            ".globl hop_too_big\\n.type hop_too_big,@function\\n.byte 0x90,0x90,0x90,0x90,0x90,0x90\\nhop_too_big: ret\\n.size hop_too_big,1\\n");
    __attribute__((noinline, patchable_function_entry(5, 5))) int reserved(int x) { return x; }
    """

    static func plan(_ name: String, stripped: Bool = false) throws -> (plan: PlannedTarget, target: ELFFile, symbol: ELFSymbol) {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: target, arguments: ["-O1", "-rdynamic", "-Wl,--build-id=sha1"])
        let unstripped = try ELFFile.load(path: exe)
        let symbol = try #require(try unstripped.symbols().first { $0.name == name })
        if stripped { try dir.run("/usr/bin/strip", ["--strip-unneeded", exe]) }
        let target = try ELFFile.load(path: exe)
        let patch = try PatchObject(path: try dir.compile("patch.so", source: FixtureSource.patch, arguments: ["-shared", "-fPIC", "-O1"]))
        let plan = try RedirectionPlanner.plan(target: target, debugFile: nil, patchObject: patch,
                                               replacements: [(name, "compute_fixed")], references: [])
        return (plan, unstripped, symbol)
    }

    @Test(arguments: ["padded", "reserved"])
    func plan_whenShortFunctionFollowsPadding_usesFiveBytesOfItAndHashesPaddingAndFunction(name: String) throws {
        let (plan, target, symbol) = try Self.plan(name)
        try #require(symbol.size >= 2 && symbol.size < 5)
        let redirection = try #require(plan.redirections.first)
        #expect(redirection.padding == 5)
        #expect(redirection.offset == symbol.value && redirection.size == symbol.size)
        #expect(redirection.regionOffset == symbol.value - 5 && redirection.regionSize == symbol.size + 5)
        let region = try target.bytes(atVirtualAddress: symbol.value - 5, count: Int(symbol.size + 5))
        #expect(redirection.sha256 == Hex.encode(SHA256.hash(data: region)))
        #expect(plan.notes.contains { $0.contains("\(name) is \(symbol.size) bytes: it is redirected the classic hotpatch way") })
    }

    @Test func plan_whenShortFunctionFollowsAnotherDirectly_refusesNamingThePaddingItLacks() throws {
        ELFRedirectionPlannerTests.expectInvalid("cramped is 3 bytes, shorter than the 5-byte jump that redirects it, and the 0 bytes before its entry are not 5 or more bytes of padding") {
            _ = try Self.plan("cramped")
        }
    }

    @Test func plan_whenFunctionIsOneByte_refusesEvenWithPadding() throws {
        ELFRedirectionPlannerTests.expectInvalid("shorter than the 2-byte hop") {
            _ = try Self.plan("hop_too_big")
        }
    }

    @Test func plan_whenOnlyDynsymIsLeft_refusesSinceNeighboursCannotBeSeen() throws {
        ELFRedirectionPlannerTests.expectInvalid("needs a .symtab") {
            _ = try Self.plan("padded", stripped: true)
        }
    }

    @Test func plan_whenGCCReservedTheArea_acceptsItFromItsListEvenWhenStripped() throws {
        let (plan, _, symbol) = try Self.plan("reserved", stripped: true)
        #expect(plan.redirections.first?.padding == 5 && plan.redirections.first?.offset == symbol.value)
    }
}
