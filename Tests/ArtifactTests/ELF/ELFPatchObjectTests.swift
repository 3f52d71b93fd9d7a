import Foundation
import Testing
@testable import Artifact

@Suite struct ELFPatchObjectTests {
    static func buildPatch(_ dir: FixtureDirectory, source: String = FixtureSource.patch,
                           name: String = "patch.so", extra: [String] = []) throws -> String {
        try dir.compile(name, source: source, arguments: ["-shared", "-fPIC", "-O1"] + extra)
    }

    @Test func init_ofOrdinarySharedObject_plansPageAlignedSegmentsMatchingReadelf() throws {
        let dir = try FixtureDirectory()
        let patch = try PatchObject(path: Self.buildPatch(dir))
        let loads = patch.elf.programHeaders.filter { $0.type == ELFProgramHeader.PT_LOAD }
        #expect(patch.segments.count == loads.count)
        for (segment, load) in zip(patch.segments, loads.sorted { $0.virtualAddress < $1.virtualAddress }) {
            #expect(segment.mapOffset == load.virtualAddress & ~0xfff)
            #expect(segment.mapOffset % 4096 == 0 && segment.mapLength % 4096 == 0 && segment.fileOffset % 4096 == 0)
            #expect(segment.fileEnd == load.virtualAddress + load.fileSize)
            #expect(segment.memoryEnd == load.virtualAddress + load.memorySize)
            #expect(segment.mapOffset + segment.mapLength >= segment.memoryEnd)
            #expect(segment.fileBackedLength <= segment.mapLength)
            #expect(segment.flags == load.flags)
        }
        let last = try #require(patch.segments.last)
        #expect(patch.imageSize == last.mapOffset + last.mapLength)
        #expect(patch.segments.contains { $0.flags.contains(.writable) })
    }

    @Test func exportedAddress_findsDefinedFunctionsAndDataButNotImports() throws {
        let dir = try FixtureDirectory()
        let patch = try PatchObject(path: Self.buildPatch(dir))
        let symbols = try patch.elf.dynamicSymbols()
        let fixed = try #require(symbols.first { $0.name == "compute_fixed" })
        #expect(patch.exportedAddress(of: "compute_fixed") == fixed.value)
        #expect(patch.exportedAddress(of: "fixed_state") != nil)
        #expect(patch.exportedAddress(of: "puts") == nil)
        #expect(patch.exportedAddress(of: "counter") == nil)
        #expect(patch.exportedAddress(of: "no_such_symbol") == nil)
    }

    @Test func requiredSymbols_listUndefinedReferencesWithVersionAndWeakness() throws {
        let dir = try FixtureDirectory()
        let patch = try PatchObject(path: Self.buildPatch(dir))
        let required = Set(patch.requiredSymbols)
        #expect(required.contains(RequiredSymbol(name: "puts", version: "GLIBC_2.2.5", isWeak: false)))
        #expect(required.contains(RequiredSymbol(name: "counter", version: nil, isWeak: false)))
        #expect(required.contains { $0.name == "__cxa_finalize" && $0.isWeak })
        #expect(!required.contains { $0.name == "compute_fixed" })
        #expect(patch.requiredSymbols.count == required.count)
    }

    @Test func relocationWrites_bindOwnSymbolsToThePatchAndImportsThroughResolve() throws {
        let dir = try FixtureDirectory()
        let patch = try PatchObject(path: Self.buildPatch(dir))
        let base: UInt64 = 0x7f00_1234_0000
        let resolved: [String: UInt64] = ["puts": 0x7f11_0000_1000, "counter": 0x5555_0000_4010]
        var asked: [RequiredSymbol] = []
        let writes = try patch.relocationWrites(loadBase: base) { need in
            asked.append(need)
            return resolved[need.name]
        }
        let relocations = try patch.elf.relocations()
        #expect(writes.count == relocations.filter { $0.type != 0 }.count)
        func write(for relocation: ELFRelocation) -> UInt64? {
            writes.first { $0.address == base + relocation.offset }?.value
        }
        for relocation in relocations {
            switch (relocation.type, relocation.symbol?.name) {
            case (8, _): #expect(write(for: relocation) == base &+ UInt64(bitPattern: relocation.addend))
            case (_, "puts"): #expect(write(for: relocation) == resolved["puts"])
            case (_, "counter"): #expect(write(for: relocation) == resolved["counter"])
            case (_, "__cxa_finalize"), (_, "__gmon_start__"): #expect(write(for: relocation) == 0)
            case (1, "fixed_state"):
                let value = try #require(patch.exportedAddress(of: "fixed_state"))
                #expect(write(for: relocation) == base + value &+ UInt64(bitPattern: relocation.addend))
            case (_, "compute_fixed"):
                #expect(write(for: relocation) == base + (try #require(patch.exportedAddress(of: "compute_fixed"))))
            default: break
            }
        }
        #expect(!asked.contains { $0.name == "compute_fixed" || $0.name == "fixed_state" })
    }

    @Test func relocationWrites_whenStrongImportIsMissing_throwsNamingSymbolAndVersion() throws {
        let dir = try FixtureDirectory()
        let patch = try PatchObject(path: Self.buildPatch(dir))
        expectUnsupported("puts (version GLIBC_2.2.5)") {
            _ = try patch.relocationWrites(loadBase: 0x10000) { $0.name == "counter" ? 0x1000 : nil }
        }
    }

    @Test func relocationWrites_whenBaseLeavesNoRoom_throws() throws {
        let dir = try FixtureDirectory()
        let patch = try PatchObject(path: Self.buildPatch(dir))
        expectUnsupported("leaves no room") {
            _ = try patch.relocationWrites(loadBase: 0xffff_ffff_ffff_f000) { _ in 0 }
        }
    }

    @Test func init_whenObjectHasThreadLocalsOfItsOwn_refusesThemNamingWhy() throws {
        let dir = try FixtureDirectory()
        let path = try Self.buildPatch(dir, source: "__thread int tls_counter; int bump(void) { return ++tls_counter; }\n")
        expectUnsupported("PT_TLS") { _ = try PatchObject(path: path) }
        expectUnsupported("a patch object cannot have thread-locals of its own") { _ = try PatchObject(path: path) }
    }

    @Test func init_whenObjectHasIndirectFunction_refusesIRELATIVE() throws {
        let dir = try FixtureDirectory()
        let source = """
        static int impl(void) { return 1; }
        static void *pick(void) { return (void *)impl; }
        __attribute__((visibility("hidden"))) int chosen(void) __attribute__((ifunc("pick")));
        int call(void) { return chosen(); }
        """
        let path = try Self.buildPatch(dir, source: source)
        expectUnsupported("R_X86_64_IRELATIVE") { _ = try PatchObject(path: path) }
    }

    @Test func init_whenCodeIsNotPIC_refusesTextRelocations() throws {
        let dir = try FixtureDirectory()
        // A word of data placed in .text is exactly what non-PIC code produces: a relocation in code.
        let source = """
        __asm__(".text\\n.globl table_in_text\\ntable_in_text: .quad shared_value\\n");
        extern int shared_value;
        int read_it(void) { return shared_value; }
        """
        let path = try dir.compile("nopic.so", source: source, arguments: ["-shared", "-fPIC", "-O1", "-Wl,-z,notext"])
        expectUnsupported("TEXTREL") { _ = try PatchObject(path: path) }
    }

    @Test func init_whenGivenAnExecutableOrRelocatable_refusesItAsNotASharedObject() throws {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: FixtureSource.program, arguments: ["-no-pie"])
        expectUnsupported("not a shared object (ET_DYN)") { _ = try PatchObject(path: exe) }
        let object = try dir.compile("obj.o", source: FixtureSource.patch, arguments: ["-c", "-fPIC"])
        expectUnsupported("is ET_REL") { _ = try PatchObject(path: object) }
    }

    /// Rewrites the first R_X86_64_RELATIVE entry of .rela.dyn in a built patch object.
    static func craftedRelocation(_ dir: FixtureDirectory, type: UInt32? = nil, offset: UInt64? = nil) throws -> ELFFile {
        let path = try buildPatch(dir)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let elf = try ELFFile(path: path, bytes: bytes)
        let table = try #require(elf.section(named: ".rela.dyn"))
        var entry = Int(table.offset)
        while bytes.get(UInt32.self, at: entry + 8) != 8 { entry += 24 }
        if let type { bytes.put(type, at: entry + 8) }
        if let offset { bytes.put(offset, at: entry) }
        return try ELFFile(path: path, bytes: bytes)
    }

    @Test func init_refusesUnsupportedRelocationTypesByName() throws {
        let dir = try FixtureDirectory()
        for (type, name) in [(UInt32(5), "R_X86_64_COPY"), (2, "R_X86_64_PC32"), (18, "R_X86_64_TPOFF64"),
                             (37, "R_X86_64_IRELATIVE"), (200, "type 200")] {
            let elf = try Self.craftedRelocation(dir, type: type)
            expectUnsupported("relocation \(name) at offset 0x") { _ = try PatchObject(elf: elf) }
        }
    }

    @Test func init_whenRelocationTargetsReadOnlyCode_refusesItAsTextRelocation() throws {
        let dir = try FixtureDirectory()
        let text = try #require(try Self.craftedRelocation(dir).section(named: ".text"))
        let elf = try Self.craftedRelocation(dir, offset: text.address)
        expectUnsupported("outside every writable PT_LOAD (a text relocation)") { _ = try PatchObject(elf: elf) }
        let beyond = try Self.craftedRelocation(dir, offset: 0xffff_ffff_ffff_fffc)
        expectUnsupported("outside every writable PT_LOAD") { _ = try PatchObject(elf: beyond) }
    }
}
