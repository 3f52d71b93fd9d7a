import Artifact
import LinuxSystem

/// A compiled object (`cc -c`, ET_REL) as the generator compares it: every section with its bytes,
/// the symbol table by index, and each section's RELA relocations. `ELFFile` validates the headers;
/// what it does not offer for relocatable objects (section contents, relocation sections) is read here.
struct RelocatableObject {
    /// One section, with its contents (empty for SHT_NOBITS, whose `size` still counts).
    struct Section {
        var index: Int
        var name: String
        var type: UInt32
        var flags: UInt64
        var size: UInt64
        var alignment: UInt64
        var entrySize: UInt64
        var bytes: [UInt8]

        var isExecutable: Bool { flags & RelocatableObject.SHF_EXECINSTR != 0 }
        var isWritable: Bool { flags & RelocatableObject.SHF_WRITE != 0 }
        var isAllocated: Bool { flags & RelocatableObject.SHF_ALLOC != 0 }
        var isThreadLocal: Bool { flags & RelocatableObject.SHF_TLS != 0 }
        var isStrings: Bool { flags & RelocatableObject.SHF_MERGE != 0 && flags & RelocatableObject.SHF_STRINGS != 0 }
        var isNoBits: Bool { type == RelocatableObject.SHT_NOBITS }
        /// The section's contents, zeros for SHT_NOBITS.
        var contents: [UInt8] { isNoBits ? [UInt8](repeating: 0, count: Int(size)) : bytes }
    }

    /// One relocation of a section (`Elf64_Rela`).
    struct Relocation: Equatable {
        var offset: UInt64
        var type: UInt32
        var symbolIndex: Int
        var addend: Int64
    }

    /// Where the object was read from, for messages.
    let path: String
    /// All sections, the null section at index 0.
    let sections: [Section]
    /// The symbol table without its null entry: symbol index N is `symbols[N - 1]` (see `symbol(at:)`).
    let symbols: [ELFSymbol]
    /// Relocations by the index of the section they apply to, sorted by offset.
    let relocations: [Int: [Relocation]]

    static let SHT_RELA: UInt32 = 4
    static let SHT_NOBITS: UInt32 = 8
    static let SHT_REL: UInt32 = 9
    static let SHF_WRITE: UInt64 = 0x1
    static let SHF_ALLOC: UInt64 = 0x2
    static let SHF_EXECINSTR: UInt64 = 0x4
    static let SHF_MERGE: UInt64 = 0x10
    static let SHF_STRINGS: UInt64 = 0x20
    static let SHF_INFO_LINK: UInt64 = 0x40
    static let SHF_GROUP: UInt64 = 0x200
    static let SHF_TLS: UInt64 = 0x400

    /// Reads and checks the relocatable object at `path`.
    init(path: String) throws(PackError) {
        let bytes: [UInt8]
        let elf: ELFFile
        do {
            bytes = try Files.read(path, limit: ELFFile.maximumFileSize)
            elf = try ELFFile(path: path, bytes: bytes)
        } catch {
            throw PackError.wrapping(error, while: "read compiled object \(path)")
        }
        guard elf.fileType == .relocatable else {
            throw PackError("Failed to read compiled object \(path): it is \(elf.fileType), not a relocatable object (ET_REL)")
        }
        self.path = path
        // ELFFile checked that every section with contents lies inside the file, and the header
        // table (in file order, like `elf.sections`); `sh_addralign` is read from it here.
        let headerTable = Int(Self.word(bytes, 40))
        sections = elf.sections.enumerated().map { index, section in
            let contents = section.type == Self.SHT_NOBITS || section.type == 0
                ? [] : Array(bytes[Int(section.offset)..<Int(section.offset + section.size)])
            return Section(index: index, name: section.name, type: section.type, flags: section.flags, size: section.size,
                           alignment: max(1, Self.word(bytes, headerTable + index * 64 + 48)), entrySize: section.entrySize, bytes: contents)
        }
        do {
            symbols = try elf.symbols()
        } catch {
            throw PackError.wrapping(error, while: "read the symbol table of \(path)")
        }
        var relocations: [Int: [Relocation]] = [:]
        for section in sections {
            if section.type == Self.SHT_REL {
                throw PackError("Failed to read compiled object \(path): section \(section.name) holds REL relocations; the x86-64 ABI uses RELA")
            }
            guard section.type == Self.SHT_RELA else { continue }
            let header = elf.sections[section.index]
            let target = Int(header.info)
            guard target > 0, target < sections.count, section.bytes.count % 24 == 0 else {
                throw PackError("Failed to read compiled object \(path): relocation section \(section.name) applies to section [\(target)] or has a size that is not a multiple of 24")
            }
            var list: [Relocation] = []
            for start in stride(from: 0, to: section.bytes.count, by: 24) {
                let info = Self.word(section.bytes, start + 8)
                let relocation = Relocation(offset: Self.word(section.bytes, start), type: UInt32(truncatingIfNeeded: info),
                                            symbolIndex: Int(info >> 32), addend: Int64(bitPattern: Self.word(section.bytes, start + 16)))
                // R_X86_64_NONE fills nothing; every other relocation a compiler writes names a symbol.
                if relocation.type == 0 { continue }
                guard relocation.symbolIndex > 0, relocation.symbolIndex <= symbols.count, relocation.offset < sections[target].size else {
                    throw PackError("Failed to read compiled object \(path): relocation at \(hex(relocation.offset)) of \(sections[target].name) names symbol \(relocation.symbolIndex) or lies outside the section")
                }
                list.append(relocation)
            }
            relocations[target, default: []] += list
        }
        self.relocations = relocations.mapValues { $0.sorted { $0.offset < $1.offset } }
    }

    /// The symbol a relocation names by its index (from 1, as the file counts).
    func symbol(at index: Int) -> ELFSymbol { symbols[index - 1] }

    /// The section a defined symbol lives in, or nil (undefined, absolute, common).
    func section(of symbol: ELFSymbol) -> Section? {
        let index = Int(symbol.sectionIndex)
        guard symbol.isDefined, index < sections.count, index < 0xff00 else { return nil }
        return sections[index]
    }

    /// The FUNC, OBJECT and TLS symbols defined in section `index`, by value.
    func namedSymbols(inSection index: Int) -> [ELFSymbol] {
        symbols.filter { Int($0.sectionIndex) == index && [.function, .object, .tls].contains($0.kind) && !$0.name.isEmpty }
            .sorted { $0.value < $1.value }
    }

    /// The relocations of section `index`.
    func relocations(ofSection index: Int) -> [Relocation] { relocations[index] ?? [] }

    /// The source file name the compiler recorded (the STT_FILE symbol), if any.
    var sourceFileName: String? { symbols.first { $0.kind == .file }?.name }

    /// Little-endian 64-bit word at `offset` of `bytes` (callers check the bounds).
    static func word(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
}

