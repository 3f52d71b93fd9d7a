import Foundation
import Testing
@testable import Artifact

/// Crafted damage to a real patch object: each must be refused with a specific reason, never trap.
@Suite struct MalformedELFTests {
    struct Base {
        let dir: FixtureDirectory
        let bytes: [UInt8]
        let elf: ELFFile

        func sectionHeader(_ name: String) throws -> Int {
            let index = try #require(elf.sections.firstIndex { $0.name == name })
            return Int(bytes.get(UInt64.self, at: 40)) + index * 64
        }

        func programHeader(_ number: Int) -> Int { Int(bytes.get(UInt64.self, at: 32)) + number * 56 }

        func parse(_ damaged: [UInt8]) throws -> ELFFile { try ELFFile(path: "crafted", bytes: damaged) }
    }

    static func base() throws -> Base {
        let dir = try FixtureDirectory()
        let path = try dir.compile("patch.so", source: FixtureSource.patch, arguments: ["-shared", "-fPIC", "-O1"])
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        return Base(dir: dir, bytes: bytes, elf: try ELFFile(path: path, bytes: bytes))
    }

    @Test func init_whenHeaderIsTruncatedOrForeign_namesWhatIsWrong() throws {
        let b = try Self.base()
        expectMalformed("not an ELF file") { _ = try b.parse([]) }
        expectMalformed("truncated ELF header: 40 bytes") { _ = try b.parse(Array(b.bytes[0..<40])) }
        expectMalformed("bad magic") { var d = b.bytes; d[1] = 0x46; _ = try b.parse(d) }
        expectMalformed("only ELFCLASS64") { var d = b.bytes; d[4] = 1; _ = try b.parse(d) }
        expectMalformed("only little-endian") { var d = b.bytes; d[5] = 2; _ = try b.parse(d) }
        expectMalformed("machine 183 is not EM_X86_64") { var d = b.bytes; d.put(UInt16(183), at: 18); _ = try b.parse(d) }
        expectMalformed("program header entry size 32") { var d = b.bytes; d.put(UInt16(32), at: 54); _ = try b.parse(d) }
    }

    @Test func init_whenTablesPointPastTheEnd_refusesThem() throws {
        let b = try Self.base()
        expectMalformed("program header table (") { var d = b.bytes; d.put(UInt64(d.count - 8), at: 32); _ = try b.parse(d) }
        expectMalformed("section header table at 0xfffffffffffffff5 lies past the end") { var d = b.bytes; d.put(UInt64.max - 10, at: 40); _ = try b.parse(d) }
        expectMalformed("extends past the end of the file") { var d = b.bytes; d.put(UInt16(0xfff0), at: 60); _ = try b.parse(d) }
        let text = try b.sectionHeader(".text")
        expectMalformed("section [") { var d = b.bytes; d.put(UInt64.max, at: text + 24); _ = try b.parse(d) }
        expectMalformed("section [") { var d = b.bytes; d.put(UInt64(1) << 40, at: text + 32); _ = try b.parse(d) }
        let load = b.programHeader(0)
        expectMalformed("program header [0]") { var d = b.bytes; d.put(UInt64.max - 1, at: load + 8); _ = try b.parse(d) }
    }

    @Test func init_whenExtendedSectionCountIsHuge_refusesWithoutAllocating() throws {
        let b = try Self.base()
        var d = b.bytes
        d.put(UInt16(0), at: 60)
        let shoff = Int(d.get(UInt64.self, at: 40))
        d.put(UInt64(1) << 58, at: shoff + 32)
        expectMalformed("section header table (288230376151711744 entries") { _ = try b.parse(d) }
    }

    @Test func init_whenTablesOverlapTheHeaderOrEachOther_refusesThem() throws {
        let b = try Self.base()
        expectMalformed("section header table at 0x8 overlaps the ELF header") {
            var d = b.bytes; d.put(UInt64(8), at: 40); _ = try b.parse(d)
        }
        expectMalformed("program header table at 0x10 overlaps the ELF header") {
            var d = b.bytes; d.put(UInt64(16), at: 32); _ = try b.parse(d)
        }
        expectMalformed("overlaps section header table") {
            var d = b.bytes; d.put(d.get(UInt64.self, at: 32), at: 40); _ = try b.parse(d)
        }
    }

    @Test func init_whenSectionNamesAreBroken_refusesThem() throws {
        let b = try Self.base()
        expectMalformed("section-name string table index 999") { var d = b.bytes; d.put(UInt16(999), at: 62); _ = try b.parse(d) }
        let text = try b.sectionHeader(".text")
        expectMalformed("section [") { var d = b.bytes; d.put(UInt32.max, at: text); _ = try b.parse(d) }
    }

    @Test func init_whenLoadSegmentHasMoreFileThanMemory_refusesIt() throws {
        let b = try Self.base()
        var d = b.bytes
        let load = b.programHeader(try #require(b.elf.programHeaders.firstIndex { $0.type == ELFProgramHeader.PT_LOAD }))
        d.put(UInt64(0), at: load + 40)
        expectMalformed("larger than its memory size") { _ = try b.parse(d) }
    }

    @Test func init_whenNoteSizesRunPastTheNote_refusesThem() throws {
        let b = try Self.base()
        let note = try #require(b.elf.programHeaders.firstIndex { $0.type == ELFProgramHeader.PT_NOTE })
        let offset = Int(b.elf.programHeaders[note].offset)
        var d = b.bytes
        d.put(UInt32.max, at: offset)
        expectMalformed("runs past its end") { _ = try b.parse(d) }
    }

    @Test func symbols_whenNameOrEntrySizeIsWrong_throwInsteadOfTrapping() throws {
        let b = try Self.base()
        let dynsym = try b.sectionHeader(".dynsym")
        let table = Int(b.bytes.get(UInt64.self, at: dynsym + 24))
        var d = b.bytes
        d.put(UInt32(0x00ff_ffff), at: table + 24)
        expectMalformed("past the end of the .dynstr") { _ = try b.parse(d).dynamicSymbols() }
        d = b.bytes
        d.put(UInt64(23), at: dynsym + 56)
        expectMalformed(".dynsym has entry size 23") { _ = try b.parse(d).dynamicSymbols() }
        d = b.bytes
        d.put(UInt32(999), at: dynsym + 40)
        expectMalformed("links to string table [999]") { _ = try b.parse(d).dynamicSymbols() }
        let dynstr = try b.sectionHeader(".dynstr")
        d = b.bytes
        let strings = Int(d.get(UInt64.self, at: dynstr + 24)), size = Int(d.get(UInt64.self, at: dynstr + 32))
        for index in strings..<(strings + size) { d[index] = 0x41 }
        expectMalformed("not NUL-terminated") { _ = try b.parse(d).dynamicSymbols() }
    }

    @Test func dynamicSymbols_whenVersionDataIsInconsistent_throw() throws {
        let b = try Self.base()
        let versym = try b.sectionHeader(".gnu.version")
        let words = Int(b.bytes.get(UInt64.self, at: versym + 24))
        var d = b.bytes
        d.put(UInt16(0x7ff0), at: words + 2)
        expectMalformed("version index 32752") { _ = try b.parse(d).dynamicSymbols() }
        let verneed = try b.sectionHeader(".gnu.version_r")
        let records = Int(b.bytes.get(UInt64.self, at: verneed + 24))
        d = b.bytes
        d.put(UInt32(0xffff_fff0), at: records + 8)
        expectMalformed("outside the section") { _ = try b.parse(d).dynamicSymbols() }
        d = b.bytes
        d.put(UInt64(2), at: versym + 32)
        expectMalformed("entries for") { _ = try b.parse(d).dynamicSymbols() }
    }

    @Test func relocations_whenTableOrSymbolIndexIsBogus_throw() throws {
        let b = try Self.base()
        let dynamic = try #require(b.elf.programHeaders.first { $0.type == ELFProgramHeader.PT_DYNAMIC })
        func damageDynamic(_ tag: Int64, _ value: UInt64) -> [UInt8] {
            var d = b.bytes
            var at = Int(dynamic.offset)
            while d.get(Int64.self, at: at) != 0 {
                if d.get(Int64.self, at: at) == tag { d.put(value, at: at + 8) }
                at += 16
            }
            return d
        }
        expectMalformed("DT_RELA table at") { _ = try b.parse(damageDynamic(8, 24 << 58)).relocations() }
        expectMalformed("is not a multiple of 24") { _ = try b.parse(damageDynamic(8, 25)).relocations() }
        expectMalformed("DT_RELAENT is 16") { _ = try b.parse(damageDynamic(9, 16)).relocations() }
        expectMalformed("not backed by the file") { _ = try b.parse(damageDynamic(7, 0xdead_0000_0000)).relocations() }
        let rela = try b.sectionHeader(".rela.dyn")
        var d = b.bytes
        d.put(UInt64(0x00ff_ffff) << 32 | 6, at: Int(b.bytes.get(UInt64.self, at: rela + 24)) + 8)
        expectMalformed("refers to symbol 16777215") { _ = try b.parse(d).relocations() }
    }

    @Test func patchObject_whenLoadSegmentsOverlap_refusesThem() throws {
        let b = try Self.base()
        let loads = b.elf.programHeaders.indices.filter { b.elf.programHeaders[$0].type == ELFProgramHeader.PT_LOAD }
        try #require(loads.count >= 2)
        var d = b.bytes
        let second = b.programHeader(loads[1])
        d.put(d.get(UInt64.self, at: second + 16) - 0x1000, at: second + 16)
        d.put(d.get(UInt64.self, at: second + 8) - 0x1000, at: second + 8)
        expectUnsupported("overlap once rounded to pages") { _ = try PatchObject(elf: try b.parse(d)) }
        d = b.bytes
        d.put(d.get(UInt64.self, at: second + 16) + 0x10, at: second + 16)
        expectUnsupported("not congruent") { _ = try PatchObject(elf: try b.parse(d)) }
    }

    @Test func readIdentity_whenProgramHeadersAreHugeOrMissing_refusesThem() throws {
        let b = try Self.base()
        let path = b.dir.path("damaged")
        var d = b.bytes
        d.put(UInt64(d.count - 100), at: 32)
        try Data(d).write(to: URL(fileURLWithPath: path))
        expectMalformed("extends past the end of the file") { _ = try ELFFile.readIdentity(path: path) }
        d = b.bytes
        d.put(UInt16(0), at: 56)
        try Data(d).write(to: URL(fileURLWithPath: path))
        expectMalformed("has no PT_LOAD segment") { _ = try ELFFile.readIdentity(path: path) }
        d = b.bytes
        d.put(UInt16(0xffff), at: 56)
        d.put(UInt32.max, at: Int(d.get(UInt64.self, at: 40)) + 44)
        try Data(d).write(to: URL(fileURLWithPath: path))
        expectMalformed("exceed the 65536-byte limit") { _ = try ELFFile.readIdentity(path: path) }
    }
}
