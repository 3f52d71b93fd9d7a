import Foundation
import Glibc
import LinuxSystem
import Testing
@testable import Artifact

@Suite struct ELFFileTests {
    @Test func load_parsesHeadersSectionsAndBuildIDOfAPIEExecutable() throws {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: FixtureSource.program, arguments: ["-O1", "-Wl,--build-id=sha1"])
        let elf = try ELFFile.load(path: exe)
        #expect(elf.fileType == .sharedObject)
        #expect(elf.programHeaders.contains { $0.type == ELFProgramHeader.PT_LOAD && $0.flags.contains(.executable) })
        #expect(elf.section(named: ".text") != nil)
        #expect(elf.sections.first?.name == "")
        let expected = try dir.output("/usr/bin/readelf", ["-n", exe])
        let id = try #require(elf.buildID)
        #expect(id.bytes.count == 20)
        #expect(expected.contains("Build ID: \(id)"))
    }

    @Test func symbols_findFunctionsWithAddressAndSizeMatchingNm() throws {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: FixtureSource.program, arguments: ["-O1"])
        let elf = try ELFFile.load(path: exe)
        let symbols = try elf.symbols()
        let compute = try #require(symbols.first { $0.name == "compute" })
        #expect(compute.kind == .function && compute.binding == .global && compute.isDefined)
        let nm = try dir.output("/usr/bin/nm", ["-S", exe])
        let line = try #require(nm.split(separator: "\n").first { $0.hasSuffix(" compute") })
        let fields = line.split(separator: " ")
        #expect(UInt64(fields[0], radix: 16) == compute.value)
        #expect(UInt64(fields[1], radix: 16) == compute.size)
        #expect(try elf.bytes(atVirtualAddress: compute.value, count: Int(compute.size)).count == Int(compute.size))
    }

    @Test func symbols_whenBinaryIsStripped_returnsEmptyAndDynsymStillHasExports() throws {
        let dir = try FixtureDirectory()
        let lib = try dir.compile("libx.so", source: FixtureSource.library, arguments: ["-shared", "-fPIC", "-O1"])
        try dir.run("/usr/bin/strip", [lib])
        let elf = try ELFFile.load(path: lib)
        #expect(try elf.symbols().isEmpty)
        let dynamic = try elf.dynamicSymbols()
        let add = try #require(dynamic.first { $0.name == "lib_add" })
        #expect(add.kind == .function && add.isDefined && add.size > 0)
        let strlenSymbol = try #require(dynamic.first { $0.name == "strlen" })
        #expect(!strlenSymbol.isDefined)
        #expect(strlenSymbol.version == "GLIBC_2.2.5")
    }

    @Test func dynamicSymbols_ofLibc_carryDefaultAndHiddenVersions() throws {
        let libc = "/lib/x86_64-linux-gnu/libc.so.6"
        let elf = try ELFFile.load(path: libc)
        let symbols = try elf.dynamicSymbols()
        #expect(symbols.count > 1000)
        let memcpys = symbols.filter { $0.name == "memcpy" }
        #expect(memcpys.contains { $0.version == "GLIBC_2.14" && !$0.isHiddenVersion })
        #expect(memcpys.contains { $0.version == "GLIBC_2.2.5" && $0.isHiddenVersion })
        #expect(elf.buildID != nil)
        #expect(try elf.dynamicEntries().contains { $0.tag == 14 })  // DT_SONAME
    }

    @Test func relocations_ofSharedLibrary_matchReadelfCountAndResolveSymbols() throws {
        let dir = try FixtureDirectory()
        let lib = try dir.compile("liby.so", source: FixtureSource.library, arguments: ["-shared", "-fPIC", "-O1"])
        let elf = try ELFFile.load(path: lib)
        let relocations = try elf.relocations()
        let readelf = try dir.output("/usr/bin/readelf", ["-rW", lib])
        let expected = readelf.split(separator: "\n").filter { $0.contains("R_X86_64_") }.count
        #expect(relocations.count == expected)
        #expect(relocations.contains { $0.type == 7 && $0.symbol?.name == "puts" })
        #expect(relocations.contains { $0.type == 8 && $0.symbol == nil })
    }

    @Test func fileOffset_mapsAddressesInsideLoadSegmentsOnly() throws {
        let elf = try ELFFile.load(path: "/bin/true")
        let load = try #require(elf.programHeaders.first { $0.type == ELFProgramHeader.PT_LOAD && $0.fileSize > 16 })
        #expect(elf.fileOffset(ofVirtualAddress: load.virtualAddress + 16) == load.offset + 16)
        #expect(elf.fileOffset(ofVirtualAddress: 0xffff_ffff_ffff_fff0) == nil)
        expectMalformed("not backed by the file") {
            _ = try elf.bytes(atVirtualAddress: load.virtualAddress + load.fileSize - 4, count: 4096 * 1024)
        }
    }

    @Test func readIdentity_matchesFullParseOfLibcAndTrue() throws {
        for path in ["/lib/x86_64-linux-gnu/libc.so.6", "/bin/true"] {
            let identity = try ELFFile.readIdentity(path: path)
            let elf = try ELFFile.load(path: path)
            let first = try #require(elf.programHeaders.filter { $0.type == ELFProgramHeader.PT_LOAD }
                .min { $0.virtualAddress < $1.virtualAddress })
            #expect(identity.buildID == elf.buildID && identity.buildID != nil)
            #expect(identity.fileType == elf.fileType)
            #expect(identity.firstLoadVirtualAddress == first.virtualAddress & ~0xfff)
            #expect(identity.firstLoadFileOffset == first.offset & ~0xfff)
        }
    }

    @Test func readIdentity_ofNonPIEExecutable_reportsLinkAddress() throws {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("nopie", source: FixtureSource.program, arguments: ["-O1", "-no-pie"])
        let identity = try ELFFile.readIdentity(path: exe)
        #expect(identity.fileType == .executable)
        #expect(identity.firstLoadVirtualAddress == 0x400000)
        #expect(identity.firstLoadFileOffset == 0)
    }

    @Test func readIdentity_saysWhereTheRELROIs_nilForAnObjectLinkedWithout() throws {
        let dir = try FixtureDirectory()
        let cases: [(name: String, arguments: [String], relro: Bool)] = [
            ("dynamic", ["-O1"], true),
            ("norelro", ["-O1", "-Wl,-z,norelro"], false),
            ("static", ["-O1", "-static"], true),
            ("static-norelro", ["-O1", "-static", "-Wl,-z,norelro"], false),
        ]
        for item in cases {
            let path = try dir.compile(item.name, source: FixtureSource.program, arguments: item.arguments)
            let identity = try ELFFile.readIdentity(path: path)
            let relro = try ELFFile.load(path: path).programHeaders.last { $0.type == ELFProgramHeader.PT_GNU_RELRO }
            #expect((identity.relroVirtualAddress != nil) == item.relro && identity.relroVirtualAddress == relro?.virtualAddress, "\(item.name)")
            #expect(identity.relroMemorySize == relro?.memorySize, "\(item.name)")
            // The linkers end a RELRO on a page boundary: every one of these has pages to protect.
            #expect((identity.relroProtectedPages != nil) == item.relro, "\(item.name)")
        }
    }

    @Test func relroProtectedPages_roundsBothEndsDown_asTheDynamicLinkerDoes_nilWhenNoWholePageIsLeft() {
        func pages(_ address: UInt64?, _ size: UInt64?) -> Range<UInt64>? {
            ELFIdentity(buildID: nil, fileType: .sharedObject, firstLoadVirtualAddress: 0, firstLoadFileOffset: 0,
                        relroVirtualAddress: address, relroMemorySize: size).relroProtectedPages
        }
        #expect(pages(0x3de8, 0x218) == 0x3000..<0x4000)
        #expect(pages(0x2d10, 0x12f0) == 0x2000..<0x4000)
        #expect(pages(0x4000, 0x1000) == 0x4000..<0x5000)
        // Short of the end of the page it starts in: glibc makes nothing read-only.
        #expect(pages(0x3100, 0x200) == nil)
        #expect(pages(0x4000, 0xfff) == nil)
        #expect(pages(nil, nil) == nil)
        #expect(pages(UInt64.max - 0x10, 0x100) == nil)
    }

    @Test func readIdentity_ofSeparateCodeObjects_reportsTheZerosAfterTheCodeUpToItsPageEnd() throws {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("separate", source: FixtureSource.program, arguments: ["-O1", "-Wl,-z,separate-code"])
        for path in ["/lib/x86_64-linux-gnu/libc.so.6", exe] {
            let spare = try #require(try ELFFile.readIdentity(path: path).spareCode, "\(path)")
            let elf = try ELFFile.load(path: path)
            let code = try #require(elf.programHeaders.first {
                $0.type == ELFProgramHeader.PT_LOAD && $0.flags.contains(.executable)
                    && $0.virtualAddress + $0.memorySize == spare.virtualAddress
            }, "the spare bytes start where an executable segment ends (\(path))")
            #expect((spare.virtualAddress + spare.length) % 4096 == 0, "they run to the end of its page")
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let fileStart = Int(code.offset + code.fileSize)
            #expect(bytes[fileStart..<min(bytes.count, fileStart + Int(spare.length))].allSatisfy { $0 == 0 }, "zeros in the file")
        }
    }

    @Test func readIdentity_whenTheCodeSegmentRunsOnIntoOtherContent_reportsNoSpareCode() throws {
        // Without separate-code the code shares its last page with the next segment's bytes.
        let dir = try FixtureDirectory()
        let exe = try dir.compile("merged", source: FixtureSource.program, arguments: ["-O1", "-Wl,-z,noseparate-code"])
        let elf = try ELFFile.load(path: exe)
        let loads = elf.programHeaders.filter { $0.type == ELFProgramHeader.PT_LOAD }
        let code = try #require(loads.first { $0.flags.contains(.executable) })
        let bytes = try Data(contentsOf: URL(fileURLWithPath: exe))
        let tail = Int(code.offset + code.fileSize)..<min(bytes.count, Int((code.offset + code.fileSize + 4095) & ~4095))
        try #require(!bytes[tail].allSatisfy { $0 == 0 }, "the fixture's code page ends in other bytes")
        #expect(try ELFFile.readIdentity(path: exe).spareCode == nil)
    }

    @Test func readIdentity_whenFileIsNotELF_throwsMalformed() throws {
        let dir = try FixtureDirectory()
        let path = dir.path("text")
        try "hello, world, this is not an ELF file at all; it is long enough for a header.....".write(toFile: path, atomically: true, encoding: .utf8)
        expectMalformed("not an ELF file") { _ = try ELFFile.readIdentity(path: path) }
        let short = dir.path("short")
        try Data([0x7f, 0x45, 0x4c, 0x46, 2, 1]).write(to: URL(fileURLWithPath: short))
        expectMalformed("truncated ELF header") { _ = try ELFFile.readIdentity(path: short) }
    }

    @Test func loadAndReadIdentity_whenFileIsMissing_throwTheFailedCallAsAnArtifactError() throws {
        let dir = try FixtureDirectory()
        let missing = dir.path("missing.so")
        let failure = ArtifactError.system(SystemError(call: "open", errno: ENOENT, subject: missing))
        #expect(throws: failure) { _ = try ELFFile.load(path: missing) }
        #expect(throws: failure) { _ = try ELFFile.readIdentity(path: missing) }
        #expect(throws: failure) { _ = try PatchObject(path: missing) }
    }

    @Test func debugFile_keepsSymtabAndBuildIDButHasNoDynsymContents() throws {
        let dir = try FixtureDirectory()
        let exe = try dir.compile("prog", source: FixtureSource.program, arguments: ["-O1", "-g"])
        let debug = dir.path("prog.debug")
        try dir.run("/usr/bin/objcopy", ["--only-keep-debug", exe, debug])
        let elf = try ELFFile.load(path: debug)
        #expect(elf.buildID == (try ELFFile.load(path: exe)).buildID)
        #expect(try elf.symbols().contains { $0.name == "compute" })
        #expect(try elf.dynamicSymbols().isEmpty)
        #expect(try elf.dynamicEntries().isEmpty)
    }
}
