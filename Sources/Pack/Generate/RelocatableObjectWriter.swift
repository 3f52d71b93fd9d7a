/// Writes an x86-64 ELF64 relocatable object (ET_REL) from sections, symbols and RELA
/// relocations: the patch object before the system linker turns it into a shared object.
struct RelocatableObjectWriter {
    /// A symbol; `section` is an index into `sections` (nil: undefined).
    struct Symbol {
        var name: String
        var kind: UInt8
        var binding: UInt8
        var visibility: UInt8 = 0
        var section: Int?
        var value: UInt64 = 0
        var size: UInt64 = 0
    }

    static let STT_NOTYPE: UInt8 = 0, STT_OBJECT: UInt8 = 1, STT_FUNC: UInt8 = 2, STT_SECTION: UInt8 = 3, STT_TLS: UInt8 = 6
    static let STB_LOCAL: UInt8 = 0, STB_GLOBAL: UInt8 = 1, STB_WEAK: UInt8 = 2

    /// The sections, in output order (index N is section header N + 1).
    var sections: [RelocatableObject.Section] = []
    /// Each section's relocations by its index in `sections`; `symbolIndex` is an index into `symbols`.
    var relocations: [Int: [RelocatableObject.Relocation]] = [:]
    var symbols: [Symbol] = []

    /// Adds `section` (as read from a compiled object, or made) and returns its index.
    mutating func append(_ section: RelocatableObject.Section) -> Int {
        var added = section
        added.index = sections.count
        sections.append(added)
        return sections.count - 1
    }

    /// The object file's bytes.
    func bytes() -> [UInt8] {
        // The ABI wants every local symbol before the first global one.
        let order = symbols.indices.filter { symbols[$0].binding == Self.STB_LOCAL } + symbols.indices.filter { symbols[$0].binding != Self.STB_LOCAL }
        var newIndex: [Int: Int] = [:]
        for (position, old) in order.enumerated() { newIndex[old] = position + 1 }
        let firstGlobal = 1 + order.filter { symbols[$0].binding == Self.STB_LOCAL }.count

        var names = StringTableBuilder(), sectionNames = StringTableBuilder()
        var symbolTable = [UInt8](repeating: 0, count: 24)
        for old in order {
            let symbol = symbols[old]
            var entry = Bytes()
            entry.u32(names.add(symbol.name))
            entry.u8(symbol.binding << 4 | symbol.kind)
            entry.u8(symbol.visibility)
            entry.u16(symbol.section.map { UInt16($0 + 1) } ?? 0)
            entry.u64(symbol.value)
            entry.u64(symbol.size)
            symbolTable += entry.bytes
        }

        // Section header table entries: null, the sections, their RELA sections, the note, the tables.
        struct Header { var name: UInt32; var type: UInt32; var flags: UInt64; var bytes: [UInt8]; var size: UInt64
                        var link: UInt32 = 0; var info: UInt32 = 0; var alignment: UInt64; var entrySize: UInt64 }
        var headers: [Header] = []
        for section in sections {
            headers.append(Header(name: sectionNames.add(section.name), type: section.type, flags: section.flags & ~RelocatableObject.SHF_GROUP,
                                  bytes: section.bytes, size: section.size, alignment: section.alignment, entrySize: section.entrySize))
        }
        let relocated = sections.indices.filter { !(relocations[$0] ?? []).isEmpty }
        let symbolTableIndex = UInt32(1 + sections.count + relocated.count + 1)
        for index in relocated {
            let section = sections[index]
            var table = Bytes()
            for relocation in relocations[index] ?? [] {
                table.u64(relocation.offset)
                table.u64(UInt64(newIndex[relocation.symbolIndex] ?? 0) << 32 | UInt64(relocation.type))
                table.u64(UInt64(bitPattern: relocation.addend))
            }
            headers.append(Header(name: sectionNames.add(".rela" + section.name), type: RelocatableObject.SHT_RELA,
                                  flags: RelocatableObject.SHF_INFO_LINK, bytes: table.bytes, size: UInt64(table.bytes.count),
                                  link: symbolTableIndex, info: UInt32(index + 1), alignment: 8, entrySize: 24))
        }
        // No executable stack: without the note, the linker would ask for one.
        headers.append(Header(name: sectionNames.add(".note.GNU-stack"), type: 1, flags: 0, bytes: [], size: 0, alignment: 1, entrySize: 0))
        headers.append(Header(name: sectionNames.add(".symtab"), type: 2, flags: 0, bytes: symbolTable, size: UInt64(symbolTable.count),
                              link: symbolTableIndex + 1, info: UInt32(firstGlobal), alignment: 8, entrySize: 24))
        headers.append(Header(name: sectionNames.add(".strtab"), type: 3, flags: 0, bytes: names.bytes, size: UInt64(names.bytes.count),
                              alignment: 1, entrySize: 0))
        let shstrtabName = sectionNames.add(".shstrtab")
        headers.append(Header(name: shstrtabName, type: 3, flags: 0, bytes: sectionNames.bytes, size: UInt64(sectionNames.bytes.count),
                              alignment: 1, entrySize: 0))

        var file = [UInt8](repeating: 0, count: 64)
        var offsets: [UInt64] = []
        for header in headers {
            let alignment = Int(max(header.alignment, 1))
            if header.type != RelocatableObject.SHT_NOBITS {
                file += [UInt8](repeating: 0, count: (alignment - file.count % alignment) % alignment)
            }
            offsets.append(UInt64(file.count))
            if header.type != RelocatableObject.SHT_NOBITS { file += header.bytes }
        }
        file += [UInt8](repeating: 0, count: (8 - file.count % 8) % 8)
        let headerTableOffset = UInt64(file.count)
        file += [UInt8](repeating: 0, count: 64)
        for (header, offset) in zip(headers, offsets) {
            var entry = Bytes()
            entry.u32(header.name); entry.u32(header.type); entry.u64(header.flags); entry.u64(0); entry.u64(offset)
            entry.u64(header.size); entry.u32(header.link); entry.u32(header.info); entry.u64(header.alignment); entry.u64(header.entrySize)
            file += entry.bytes
        }

        var elfHeader = Bytes()
        elfHeader.bytes = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        elfHeader.u16(1)  // ET_REL
        elfHeader.u16(62)  // EM_X86_64
        elfHeader.u32(1)
        elfHeader.u64(0); elfHeader.u64(0); elfHeader.u64(headerTableOffset)
        elfHeader.u32(0)
        elfHeader.u16(64); elfHeader.u16(0); elfHeader.u16(0); elfHeader.u16(64)
        elfHeader.u16(UInt16(headers.count + 1)); elfHeader.u16(UInt16(headers.count))
        file.replaceSubrange(0..<64, with: elfHeader.bytes)
        return file
    }
}

/// Little-endian bytes appended field by field.
struct Bytes {
    var bytes: [UInt8] = []
    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { bytes += [UInt8(value & 0xff), UInt8(value >> 8)] }
    mutating func u32(_ value: UInt32) { u16(UInt16(value & 0xffff)); u16(UInt16(value >> 16)) }
    mutating func u64(_ value: UInt64) { u32(UInt32(value & 0xffff_ffff)); u32(UInt32(value >> 32)) }
}

/// A string table under construction: each distinct string once, offset 0 the empty string.
struct StringTableBuilder {
    var bytes: [UInt8] = [0]
    private var offsets: [String: UInt32] = ["": 0]

    /// The offset of `string`, added when new.
    mutating func add(_ string: String) -> UInt32 {
        if let known = offsets[string] { return known }
        let offset = UInt32(bytes.count)
        bytes += Array(string.utf8) + [0]
        offsets[string] = offset
        return offset
    }
}
