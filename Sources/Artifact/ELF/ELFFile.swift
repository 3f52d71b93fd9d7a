import Architecture
import Glibc
import LinuxSystem

/// An ELF64 little-endian object of the host architecture held in memory, parsed with every offset bounds-checked:
/// any input either parses or throws `ArtifactError.malformedELF`, never traps.
public struct ELFFile: Sendable {
    /// Where the bytes came from (used in error messages).
    public let path: String
    /// The object type (`e_type`).
    public let fileType: ELFFileType
    /// All program headers, in file order.
    public let programHeaders: [ELFProgramHeader]
    /// All section headers in file order, including the null section at index 0 (so `link` indexes it).
    public let sections: [ELFSection]
    /// The NT_GNU_BUILD_ID note, from a PT_NOTE segment or else a SHT_NOTE section.
    public let buildID: BuildID?

    let bytes: [UInt8]

    /// The largest file `load(path:)` reads.
    public static let maximumFileSize = 2 << 30

    /// Parses `bytes`; validates ELF64, little-endian, the host architecture's machine and that every table lies inside the data.
    public init(path: String, bytes: [UInt8]) throws {
        self.path = path
        self.bytes = bytes
        let fileSize = UInt64(bytes.count)
        let header = try ELFHeader(bytes, path: path, fileSize: fileSize)
        fileType = ELFFileType(raw: header.type)

        var sectionCount = header.sectionCount
        var sectionNameIndex = UInt32(header.sectionNameIndex)
        var programCount = UInt64(header.programCount)
        if header.sectionOffset != 0 {
            // Extended numbering keeps the real counts in the null section when they overflow 16 bits.
            guard let first = ByteRecord(bytes, at: Int(exactly: header.sectionOffset) ?? -1, size: 64) else {
                throw ArtifactError.malformedELF(path: path, reason: "section header table at \(elfHex(header.sectionOffset)) lies past the end of the file (\(bytes.count) bytes)")
            }
            if sectionCount == 0 { sectionCount = first.u64(32) }
            if header.sectionNameIndex == ELFHeader.SHN_XINDEX { sectionNameIndex = first.u32(40) }
            if header.programCount == ELFHeader.PN_XNUM { programCount = UInt64(first.u32(44)) }
        }

        programHeaders = try ELFHeader.programHeaders(
            in: bytes, tableOffset: header.programOffset, count: programCount, fileSize: fileSize, path: path)

        let sectionTable = try ELFHeader.tableRange(
            "section header", offset: header.sectionOffset, count: sectionCount, entrySize: 64,
            fileSize: fileSize, path: path)
        if let programTable = try? ELFHeader.tableRange(
            "program header", offset: header.programOffset, count: programCount, entrySize: 56,
            fileSize: fileSize, path: path),
           !programTable.isEmpty, !sectionTable.isEmpty, programTable.overlaps(sectionTable) {
            throw ArtifactError.malformedELF(path: path, reason: "program header table (\(elfHex(programTable.lowerBound))–\(elfHex(programTable.upperBound))) overlaps section header table (\(elfHex(sectionTable.lowerBound))–\(elfHex(sectionTable.upperBound)))")
        }
        sections = try ELFFile.parseSections(bytes, table: sectionTable, nameIndex: sectionNameIndex, path: path)
        buildID = try ELFFile.findBuildID(bytes, programHeaders: programHeaders, sections: sections, path: path)
    }

    /// Reads and parses a whole file of at most `maximumFileSize` bytes. Throws `ArtifactError`:
    /// `.system` when the file cannot be read, `.malformedELF` when it does not parse.
    public static func load(path: String) throws -> ELFFile {
        let bytes: [UInt8]
        do throws(SystemError) {
            bytes = try Files.read(path, limit: maximumFileSize)
        } catch {
            throw ArtifactError.system(error)
        }
        return try ELFFile(path: path, bytes: bytes)
    }

    /// The first section called `name`.
    public func section(named name: String) -> ELFSection? {
        sections.first { $0.name == name }
    }

    /// The file offset holding `virtualAddress`, through the file-backed part of a PT_LOAD; nil if none.
    public func fileOffset(ofVirtualAddress address: UInt64) -> UInt64? {
        for segment in programHeaders where segment.type == ELFProgramHeader.PT_LOAD {
            guard address >= segment.virtualAddress else { continue }
            let delta = address - segment.virtualAddress
            if delta < segment.fileSize { return ByteRange.add(segment.offset, delta) }
        }
        return nil
    }

    /// The `count` bytes stored at `virtualAddress`; they must all lie in one PT_LOAD's file-backed part.
    public func bytes(atVirtualAddress address: UInt64, count: Int) throws -> [UInt8] {
        Array(bytes[try fileRange(ofVirtualAddress: address, count: count, what: "requested range")])
    }

    /// The index range of `count` file-backed bytes at `address`, which must not straddle segments.
    func fileRange(ofVirtualAddress address: UInt64, count: Int, what: @autoclosure () -> String) throws -> Range<Int> {
        guard count >= 0 else {
            throw ArtifactError.malformedELF(path: path, reason: "\(what()) has a negative length \(count)")
        }
        for segment in programHeaders where segment.type == ELFProgramHeader.PT_LOAD {
            guard address >= segment.virtualAddress else { continue }
            let delta = address - segment.virtualAddress
            guard delta < segment.fileSize || (count == 0 && delta == segment.fileSize) else { continue }
            guard UInt64(count) <= segment.fileSize - delta, let start = ByteRange.add(segment.offset, delta),
                  let range = ByteRange.within(offset: start, size: UInt64(count), limit: bytes.count) else { break }
            return range
        }
        throw ArtifactError.malformedELF(path: path, reason: "\(what()) at \(elfHex(address)) (\(count) bytes) is not backed by the file in one PT_LOAD segment")
    }

    /// The index range of a section's contents; empty for SHT_NOBITS (checked in `parseSections`).
    func contents(of section: ELFSection) -> Range<Int> {
        guard section.type != ELFSection.SHT_NOBITS,
              let range = ByteRange.within(offset: section.offset, size: section.size, limit: bytes.count)
        else { return 0..<0 }
        return range
    }

    private static func parseSections(_ bytes: [UInt8], table: Range<Int>, nameIndex: UInt32,
                                      path: String) throws -> [ELFSection] {
        var raw: [ELFSection] = []
        raw.reserveCapacity(table.count / 64)
        var nameOffsets: [UInt32] = []
        for (index, start) in stride(from: table.lowerBound, to: table.upperBound, by: 64).enumerated() {
            guard let record = ByteRecord(bytes, at: start, size: 64) else { break }
            var section = ELFSection(
                name: "", type: record.u32(4), flags: record.u64(8), address: record.u64(16),
                offset: record.u64(24), size: record.u64(32), link: record.u32(40), info: record.u32(44),
                entrySize: record.u64(56))
            section.addressAlignment = record.u64(48)
            if section.type != ELFSection.SHT_NOBITS, section.type != ELFSection.SHT_NULL,
               ByteRange.within(offset: section.offset, size: section.size, limit: bytes.count) == nil {
                throw ArtifactError.malformedELF(path: path, reason: "section [\(index)] (offset \(elfHex(section.offset)), size \(elfHex(section.size))) extends past the end of the file (\(bytes.count) bytes)")
            }
            raw.append(section)
            nameOffsets.append(record.u32(0))
        }
        guard nameIndex != 0, !raw.isEmpty else { return raw }
        guard nameIndex < raw.count else {
            throw ArtifactError.malformedELF(path: path, reason: "section-name string table index \(nameIndex) is out of range (\(raw.count) sections)")
        }
        let names = raw[Int(nameIndex)]
        guard names.type != ELFSection.SHT_NOBITS,
              let nameRange = ByteRange.within(offset: names.offset, size: names.size, limit: bytes.count) else {
            throw ArtifactError.malformedELF(path: path, reason: "section-name string table [\(nameIndex)] has no contents in the file")
        }
        let strings = StringTable(bytes: bytes, range: nameRange, name: "section-name string table", path: path)
        for index in raw.indices {
            raw[index].name = try strings.string(at: nameOffsets[index], for: "section [\(index)]")
        }
        return raw
    }

    private static func findBuildID(_ bytes: [UInt8], programHeaders: [ELFProgramHeader],
                                    sections: [ELFSection], path: String) throws -> BuildID? {
        for segment in programHeaders where segment.type == ELFProgramHeader.PT_NOTE {
            guard let range = ByteRange.within(offset: segment.offset, size: segment.fileSize, limit: bytes.count) else { continue }
            if let id = try ELFNotes.buildID(in: Array(bytes[range]), alignment: segment.alignment,
                                             what: "PT_NOTE at \(elfHex(segment.offset))", path: path) {
                return id
            }
        }
        for section in sections where section.type == ELFSection.SHT_NOTE {
            guard let range = ByteRange.within(offset: section.offset, size: section.size, limit: bytes.count) else { continue }
            if let id = try ELFNotes.buildID(in: Array(bytes[range]), alignment: section.addressAlignment,
                                             what: "section \(section.name)", path: path) {
                return id
            }
        }
        return nil
    }
}

/// The fields of the ELF file header (`Elf64_Ehdr`) this layer uses, validated.
struct ELFHeader {
    var type: UInt16
    var programOffset: UInt64
    var sectionOffset: UInt64
    var programCount: UInt16
    var sectionCount: UInt64
    var sectionNameIndex: UInt16

    static let size = 64
    static let PN_XNUM: UInt16 = 0xffff
    static let SHN_XINDEX: UInt16 = 0xffff

    /// Validates the identification bytes and table geometry of the header at the start of `bytes`.
    init(_ bytes: [UInt8], path: String, fileSize: UInt64) throws {
        guard let record = ByteRecord(bytes, at: 0, size: ELFHeader.size) else {
            if bytes.count >= 4, bytes[0..<4] == [0x7f, 0x45, 0x4c, 0x46] {
                throw ArtifactError.malformedELF(path: path, reason: "truncated ELF header: \(bytes.count) bytes, need \(ELFHeader.size)")
            }
            throw ArtifactError.malformedELF(path: path, reason: "not an ELF file (\(bytes.count) bytes, no ELF header)")
        }
        guard record.u32(0) == 0x464c_457f else {
            throw ArtifactError.malformedELF(path: path, reason: "not an ELF file (bad magic)")
        }
        guard record.u8(4) == 2 else {
            throw ArtifactError.malformedELF(path: path, reason: "ELF class \(record.u8(4)) is not supported (only ELFCLASS64)")
        }
        guard record.u8(5) == 1 else {
            throw ArtifactError.malformedELF(path: path, reason: "data encoding \(record.u8(5)) is not supported (only little-endian)")
        }
        guard record.u8(6) == 1, record.u32(20) == 1 else {
            throw ArtifactError.malformedELF(path: path, reason: "ELF version \(record.u8(6))/\(record.u32(20)) is not EV_CURRENT")
        }
        guard record.u16(18) == HostArchitecture.elfMachine else {
            throw ArtifactError.malformedELF(
                path: path,
                reason: "machine \(record.u16(18)) is not \(HostArchitecture.elfMachineName) (\(HostArchitecture.elfMachine))")
        }
        type = record.u16(16)
        programOffset = record.u64(32)
        sectionOffset = record.u64(40)
        let programEntrySize = record.u16(54)
        programCount = record.u16(56)
        let sectionEntrySize = record.u16(58)
        sectionCount = UInt64(record.u16(60))
        sectionNameIndex = record.u16(62)
        if programCount != 0 {
            guard programEntrySize == 56 else {
                throw ArtifactError.malformedELF(path: path, reason: "program header entry size \(programEntrySize) is not 56")
            }
            guard programOffset >= UInt64(ELFHeader.size) else {
                throw ArtifactError.malformedELF(path: path, reason: "program header table at \(elfHex(programOffset)) overlaps the ELF header")
            }
        }
        if sectionOffset != 0 {
            guard sectionEntrySize == 64 else {
                throw ArtifactError.malformedELF(path: path, reason: "section header entry size \(sectionEntrySize) is not 64")
            }
            guard sectionOffset >= UInt64(ELFHeader.size) else {
                throw ArtifactError.malformedELF(path: path, reason: "section header table at \(elfHex(sectionOffset)) overlaps the ELF header")
            }
        } else {
            sectionCount = 0
        }
    }

    /// The index range of a table of `count` entries, or a precise error when it leaves the file.
    static func tableRange(_ what: String, offset: UInt64, count: UInt64, entrySize: UInt64,
                           fileSize: UInt64, path: String) throws -> Range<Int> {
        guard count != 0 else { return 0..<0 }
        guard let size = ByteRange.multiply(count, entrySize),
              let range = ByteRange.within(offset: offset, size: size, limit: Int(clamping: fileSize)) else {
            throw ArtifactError.malformedELF(path: path, reason: "\(what) table (\(count) entries at \(elfHex(offset))) extends past the end of the file (\(fileSize) bytes)")
        }
        return range
    }

    /// Parses and validates `count` program headers at `tableOffset` of `bytes` (which may hold just
    /// the table, at `tableOffset` 0); segments must lie within a file of `fileSize` bytes.
    static func programHeaders(in bytes: [UInt8], tableOffset: UInt64, count: UInt64,
                               fileSize: UInt64, path: String) throws -> [ELFProgramHeader] {
        let table = try tableRange("program header", offset: tableOffset, count: count, entrySize: 56,
                                   fileSize: UInt64(bytes.count), path: path)
        var headers: [ELFProgramHeader] = []
        headers.reserveCapacity(table.count / 56)
        for (index, start) in stride(from: table.lowerBound, to: table.upperBound, by: 56).enumerated() {
            guard let record = ByteRecord(bytes, at: start, size: 56) else { break }
            let header = ELFProgramHeader(
                type: record.u32(0), flags: ELFSegmentFlags(rawValue: record.u32(4)), offset: record.u64(8),
                virtualAddress: record.u64(16), fileSize: record.u64(32), memorySize: record.u64(40),
                alignment: record.u64(48))
            guard let end = ByteRange.add(header.offset, header.fileSize), end <= fileSize else {
                throw ArtifactError.malformedELF(path: path, reason: "program header [\(index)] (offset \(elfHex(header.offset)), file size \(elfHex(header.fileSize))) extends past the end of the file (\(fileSize) bytes)")
            }
            if header.type == ELFProgramHeader.PT_LOAD {
                guard header.fileSize <= header.memorySize else {
                    throw ArtifactError.malformedELF(path: path, reason: "PT_LOAD [\(index)] has file size \(elfHex(header.fileSize)) larger than its memory size \(elfHex(header.memorySize))")
                }
                guard ByteRange.add(header.virtualAddress, header.memorySize) != nil else {
                    throw ArtifactError.malformedELF(path: path, reason: "PT_LOAD [\(index)] at \(elfHex(header.virtualAddress)) with memory size \(elfHex(header.memorySize)) wraps around the address space")
                }
            }
            headers.append(header)
        }
        return headers
    }
}

/// A string table section: NUL-terminated strings addressed by offset.
struct StringTable {
    let bytes: [UInt8]
    let range: Range<Int>
    let name: String
    let path: String

    /// The string at `offset`, which must start inside the table and end with a NUL inside it.
    func string(at offset: UInt32, for owner: @autoclosure () -> String) throws -> String {
        guard let start = Int(exactly: offset), start < range.count else {
            throw ArtifactError.malformedELF(path: path, reason: "\(owner()) has name offset \(elfHex(offset)) past the end of the \(name) (size \(elfHex(range.count)))")
        }
        let from = range.lowerBound + start
        guard let end = bytes[from..<range.upperBound].firstIndex(of: 0) else {
            throw ArtifactError.malformedELF(path: path, reason: "\(owner()) has a name at offset \(elfHex(offset)) that is not NUL-terminated within the \(name)")
        }
        return String(decoding: bytes[from..<end], as: UTF8.self)
    }
}

/// Note parsing (`Elf64_Nhdr` records).
enum ELFNotes {
    static let NT_GNU_BUILD_ID: UInt32 = 3

    /// The build-id in a block of notes, or nil when none of its notes is one.
    static func buildID(in notes: [UInt8], alignment: UInt64, what: @autoclosure () -> String,
                        path: String) throws -> BuildID? {
        // gABI pads names and descriptors to 4 bytes; 8-aligned note segments (.note.gnu.property) pad to 8.
        let padding: UInt64 = alignment == 8 ? 8 : 4
        var offset = 0
        while let header = ByteRecord(notes, at: offset, size: 12) {
            let nameSize = UInt64(header.u32(0)), descriptorSize = UInt64(header.u32(4)), type = header.u32(8)
            // Padding applies to positions within the block: the descriptor and the next note start aligned.
            guard let nameRange = ByteRange.within(offset: UInt64(offset + 12), size: nameSize, limit: notes.count),
                  let descriptorStart = ByteRange.alignUp(UInt64(nameRange.upperBound), padding),
                  let descriptorRange = ByteRange.within(offset: descriptorStart, size: descriptorSize, limit: notes.count)
            else {
                throw ArtifactError.malformedELF(path: path, reason: "\(what()) has a note at offset \(elfHex(offset)) (name \(nameSize) bytes, descriptor \(descriptorSize) bytes) that runs past its end (\(notes.count) bytes)")
            }
            if type == NT_GNU_BUILD_ID, notes[nameRange] == [0x47, 0x4e, 0x55, 0], descriptorSize > 0 {
                return BuildID(bytes: Array(notes[descriptorRange]))
            }
            guard let next = ByteRange.alignUp(UInt64(descriptorRange.upperBound), padding), let nextOffset = Int(exactly: next),
                  nextOffset > offset else { break }
            offset = nextOffset
        }
        return nil
    }
}
