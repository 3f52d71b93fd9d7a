import LinuxSystem
extension ELFFile {
    /// The static symbol table (`.symtab`) without its null entry; empty when the file is stripped.
    public func symbols() throws -> [ELFSymbol] {
        guard let index = sections.firstIndex(where: { $0.type == ELFSection.SHT_SYMTAB }) else { return [] }
        return try symbolTable(at: index, versions: nil).dropFirst().map { $0 }
    }

    /// The dynamic symbol table (`.dynsym`) without its null entry, with GNU symbol versions; empty
    /// when there is none or its contents were stripped (a debug file keeps it as SHT_NOBITS).
    public func dynamicSymbols() throws -> [ELFSymbol] {
        try dynamicSymbolTable().dropFirst().map { $0 }
    }

    /// The entries of the dynamic section (PT_DYNAMIC, else SHT_DYNAMIC) up to DT_NULL.
    public func dynamicEntries() throws -> [ELFDynamicEntry] {
        let range: Range<Int>
        if let segment = programHeaders.first(where: { $0.type == ELFProgramHeader.PT_DYNAMIC }) {
            guard let found = ByteRange.within(offset: segment.offset, size: segment.fileSize, limit: bytes.count) else {
                throw ArtifactError.malformedELF(path: path, reason: "PT_DYNAMIC at \(elfHex(segment.offset)) extends past the end of the file")
            }
            range = found
        } else if let section = sections.first(where: { $0.type == ELFSection.SHT_DYNAMIC }) {
            range = contents(of: section)
        } else {
            return []
        }
        var entries: [ELFDynamicEntry] = []
        for start in stride(from: range.lowerBound, to: range.upperBound, by: 16) {
            guard start <= range.upperBound - 16, let record = ByteRecord(bytes, at: start, size: 16) else { break }
            let entry = ELFDynamicEntry(tag: record.i64(0), value: record.u64(8))
            if entry.tag == ELFDynamicEntry.DT_NULL { break }
            entries.append(entry)
        }
        return entries
    }

    /// The RELA relocations the dynamic section lists (DT_RELA/DT_RELASZ, then DT_JMPREL/DT_PLTRELSZ),
    /// their symbols taken from `.dynsym`.
    public func relocations() throws -> [ELFRelocation] {
        let entries = try dynamicEntries()
        func value(_ tag: Int64) -> UInt64? { entries.first { $0.tag == tag }?.value }
        if value(ELFDynamicEntry.DT_REL) != nil {
            throw ArtifactError.malformedELF(path: path, reason: "has DT_REL relocations, which the host ABI does not use (only DT_RELA is read)")
        }
        if let entrySize = value(ELFDynamicEntry.DT_RELAENT), entrySize != 24 {
            throw ArtifactError.malformedELF(path: path, reason: "DT_RELAENT is \(entrySize), not 24")
        }
        if let kind = value(ELFDynamicEntry.DT_PLTREL), kind != UInt64(ELFDynamicEntry.DT_RELA) {
            throw ArtifactError.malformedELF(path: path, reason: "DT_PLTREL is \(kind), not DT_RELA (7)")
        }
        var tables: [(name: String, range: Range<Int>)] = []
        for (name, addressTag, sizeTag) in [("DT_RELA", ELFDynamicEntry.DT_RELA, ELFDynamicEntry.DT_RELASZ),
                                            ("DT_JMPREL", ELFDynamicEntry.DT_JMPREL, ELFDynamicEntry.DT_PLTRELSZ)] {
            guard let address = value(addressTag) else { continue }
            let size = value(sizeTag) ?? 0
            guard size % 24 == 0, let count = Int(exactly: size) else {
                throw ArtifactError.malformedELF(path: path, reason: "\(name) table size \(elfHex(size)) is not a multiple of 24")
            }
            let range = try fileRange(ofVirtualAddress: address, count: count, what: "\(name) table")
            tables.append((name, range))
        }
        if tables.count == 2, tables[0].range.overlaps(tables[1].range) {
            // Some linkers count .rela.plt inside DT_RELASZ; the loader then skips the overlap, and so do we.
            guard tables[0].range.contains(tables[1].range.lowerBound),
                  tables[1].range.upperBound <= tables[0].range.upperBound else {
                throw ArtifactError.malformedELF(path: path, reason: "DT_RELA and DT_JMPREL tables overlap partially")
            }
            tables.removeLast()
        }
        if tables.isEmpty { return [] }
        let symbols = try dynamicSymbolTable()
        var relocations: [ELFRelocation] = []
        for table in tables {
            for start in stride(from: table.range.lowerBound, to: table.range.upperBound, by: 24) {
                guard let record = ByteRecord(bytes, at: start, size: 24) else { break }
                let info = record.u64(8)
                let symbolIndex = info >> 32
                var symbol: ELFSymbol?
                if symbolIndex != 0 {
                    guard symbolIndex < UInt64(symbols.count) else {
                        throw ArtifactError.malformedELF(path: path, reason: "relocation at \(elfHex(record.u64(0))) in \(table.name) refers to symbol \(symbolIndex), but .dynsym has \(symbols.count) entries")
                    }
                    symbol = symbols[Int(symbolIndex)]
                }
                relocations.append(ELFRelocation(offset: record.u64(0), type: UInt32(truncatingIfNeeded: info),
                                                 addend: record.i64(16), symbol: symbol))
            }
        }
        return relocations
    }

    /// All of `.dynsym`, null entry included so relocation indices work; versioned.
    func dynamicSymbolTable() throws -> [ELFSymbol] {
        guard let index = sections.firstIndex(where: { $0.type == ELFSection.SHT_DYNSYM }),
              sections[index].type != ELFSection.SHT_NOBITS else { return [] }
        return try symbolTable(at: index, versions: symbolVersions(forSymbolTable: index))
    }

    /// Parses the symbol table in section `index`; `versions` maps each entry to its versym word.
    private func symbolTable(at index: Int, versions: SymbolVersions?) throws -> [ELFSymbol] {
        let table = sections[index]
        let label = table.name.isEmpty ? "symbol table [\(index)]" : table.name
        guard table.entrySize == 24 else {
            throw ArtifactError.malformedELF(path: path, reason: "\(label) has entry size \(table.entrySize), not 24")
        }
        guard table.size % 24 == 0 else {
            throw ArtifactError.malformedELF(path: path, reason: "\(label) size \(elfHex(table.size)) is not a multiple of 24")
        }
        let strings = try stringTable(linkedFrom: table, label: label)
        let range = contents(of: table)
        var cache: [UInt32: String] = [:]
        var symbols: [ELFSymbol] = []
        symbols.reserveCapacity(range.count / 24)
        for (number, start) in stride(from: range.lowerBound, to: range.upperBound, by: 24).enumerated() {
            guard let record = ByteRecord(bytes, at: start, size: 24) else { break }
            let nameOffset = record.u32(0)
            let name: String
            if let known = cache[nameOffset] {
                name = known
            } else {
                name = try strings.string(at: nameOffset, for: "symbol \(number) of \(label)")
                cache[nameOffset] = name
            }
            let info = record.u8(4)
            var symbol = ELFSymbol(
                name: name, value: record.u64(8), size: record.u64(16), kind: ELFSymbolKind(raw: info & 0xf),
                binding: ELFSymbolBinding(raw: info >> 4), visibility: record.u8(5) & 0x3,
                sectionIndex: record.u16(6))
            if let versions, number != 0 {
                (symbol.version, symbol.isHiddenVersion) = try versions.version(ofSymbol: number)
            }
            symbols.append(symbol)
        }
        return symbols
    }

    /// The string table a symbol table or version section names in `sh_link`.
    private func stringTable(linkedFrom section: ELFSection, label: String) throws -> StringTable {
        guard Int(section.link) < sections.count, section.link != 0 else {
            throw ArtifactError.malformedELF(path: path, reason: "\(label) links to string table [\(section.link)], which does not exist")
        }
        let strings = sections[Int(section.link)]
        guard strings.type == ELFSection.SHT_STRTAB else {
            throw ArtifactError.malformedELF(path: path, reason: "\(label) links to section [\(section.link)] of type \(elfHex(strings.type)), not a string table")
        }
        return StringTable(bytes: bytes, range: contents(of: strings),
                           name: strings.name.isEmpty ? "string table [\(section.link)]" : strings.name, path: path)
    }

    /// Reads `.gnu.version` and the version names of `.gnu.version_d`/`.gnu.version_r`, if present.
    private func symbolVersions(forSymbolTable tableIndex: Int) throws -> SymbolVersions? {
        guard let versym = sections.first(where: {
            $0.type == ELFSection.SHT_GNU_versym && Int($0.link) == tableIndex
        }) ?? sections.first(where: { $0.type == ELFSection.SHT_GNU_versym }),
              versym.type != ELFSection.SHT_NOBITS else { return nil }
        let symbolCount = sections[tableIndex].size / 24
        guard let needed = ByteRange.multiply(symbolCount, 2), versym.size >= needed else {
            throw ArtifactError.malformedELF(path: path, reason: "\(versym.name) has \(versym.size / 2) entries for \(symbolCount) dynamic symbols")
        }
        var names: [UInt16: String] = [:]
        for section in sections where section.type == ELFSection.SHT_GNU_verdef || section.type == ELFSection.SHT_GNU_verneed {
            if section.type == ELFSection.SHT_GNU_verdef {
                try readVersionDefinitions(section, into: &names)
            } else {
                try readVersionRequirements(section, into: &names)
            }
        }
        return SymbolVersions(bytes: bytes, range: contents(of: versym), names: names, path: path)
    }

    /// Follows the `Elf64_Verdef` chain (`vd_next`), at most `sh_info` entries, staying inside the section.
    private func readVersionDefinitions(_ section: ELFSection, into names: inout [UInt16: String]) throws {
        let label = section.name.isEmpty ? "version definition section" : section.name
        let strings = try stringTable(linkedFrom: section, label: label)
        let range = contents(of: section)
        var offset = 0
        for _ in 0..<min(Int(section.info), range.count / 20 + 1) {
            let definition = try record(at: offset, size: 20, in: range, "\(label) entry at offset \(elfHex(offset)) runs past its end")
            let aux = try record(at: offset + Int(definition.u32(12)), size: 8, in: range,
                                 "\(label) entry at offset \(elfHex(offset)) has its name record outside the section")
            names[definition.u16(4) & 0x7fff] = try strings.string(at: aux.u32(0), for: "\(label) entry \(definition.u16(4))")
            let next = Int(definition.u32(16))
            if next == 0 { break }
            offset += next
        }
    }

    /// The `size`-byte record at `offset` of the section bytes `range`; `problem` says what is
    /// wrong when it does not lie inside them (a negative `offset` never does).
    private func record(at offset: Int, size: Int, in range: Range<Int>, _ problem: @autoclosure () -> String) throws -> ByteRecord {
        guard offset >= 0, offset <= range.count - size, let record = ByteRecord(bytes, at: range.lowerBound + offset, size: size) else {
            throw ArtifactError.malformedELF(path: path, reason: problem())
        }
        return record
    }

    /// Follows the `Elf64_Verneed` chain and each one's `Elf64_Vernaux` list, staying inside the section.
    private func readVersionRequirements(_ section: ELFSection, into names: inout [UInt16: String]) throws {
        let label = section.name.isEmpty ? "version requirement section" : section.name
        let strings = try stringTable(linkedFrom: section, label: label)
        let range = contents(of: section)
        var budget = range.count / 16 + 1  // every record is 16 bytes: no honest chain is longer
        var offset = 0
        for _ in 0..<min(Int(section.info), budget) {
            let need = try record(at: offset, size: 16, in: range, "\(label) entry at offset \(elfHex(offset)) runs past its end")
            var auxOffset = offset + Int(need.u32(8))
            for _ in 0..<Int(need.u16(2)) {
                budget -= 1
                // A chain longer than the section could hold loops: its record counts as outside.
                let aux = try record(at: budget >= 0 ? auxOffset : -1, size: 16, in: range,
                                     "\(label) entry at offset \(elfHex(offset)) has a version record outside the section")
                names[aux.u16(6) & 0x7fff] = try strings.string(at: aux.u32(8), for: "\(label) version \(aux.u16(6))")
                let next = Int(aux.u32(12))
                if next == 0 { break }
                auxOffset += next
            }
            let next = Int(need.u32(12))
            if next == 0 { break }
            offset += next
        }
    }
}

/// The `.gnu.version` words of a dynamic symbol table and the names its indices stand for.
struct SymbolVersions {
    let bytes: [UInt8]
    let range: Range<Int>
    let names: [UInt16: String]
    let path: String

    /// The version name and hidden flag of symbol `number`; indices 0 and 1 mean unversioned.
    func version(ofSymbol number: Int) throws -> (String?, Bool) {
        guard let word = ByteRecord(bytes, at: range.lowerBound + number * 2, size: 2),
              number * 2 < range.count else { return (nil, false) }
        let raw = word.u16(0)
        let index = raw & 0x7fff
        let hidden = raw & 0x8000 != 0
        if index <= 1 { return (nil, hidden) }
        guard let name = names[index] else {
            throw ArtifactError.malformedELF(path: path, reason: "dynamic symbol \(number) has version index \(index), which no version definition or requirement names")
        }
        return (name, hidden)
    }
}
