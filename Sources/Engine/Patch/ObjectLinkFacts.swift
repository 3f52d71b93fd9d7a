import Architecture
import Artifact

/// What binding a patch object's symbols needs to know about one loaded file, beyond its exports:
/// where its dynamic linker stored resolved addresses (the GOT slots of its relocations), where its
/// dynamic section and thread-locals are, and glibc's published layout of private structures.
/// Read once per file, shared by every process that maps it.
struct ObjectLinkFacts: Sendable {
    /// One word the dynamic linker fills with a symbol's address.
    struct SymbolSlot: Sendable {
        /// The version the object was linked against, if any.
        let version: String?
        /// The slot's link-time address.
        let offset: UInt64
    }

    /// Where glibc says one field of one of its structures lies (a `_thread_db_*` descriptor).
    struct FieldDescriptor: Sendable, Equatable {
        /// The field's size in bits.
        let bits: UInt32
        /// How many elements it has (1 for a scalar).
        let count: UInt32
        /// Its offset in bytes from the start of the structure.
        let offset: UInt32
    }

    /// GOT slots of IRELATIVE relocations, by addend (the address of the resolver they ran).
    let indirectSlots: [UInt64: [UInt64]]
    /// GOT and PLT slots of GLOB_DAT/JUMP_SLOT relocations, by symbol name.
    let symbolSlots: [String: [SymbolSlot]]
    /// The link-time address of its dynamic section (PT_DYNAMIC), which its `link_map` names.
    let dynamicAddress: UInt64?
    /// Whether it has thread-locals (a PT_TLS segment).
    let hasThreadLocalStorage: Bool
    /// glibc's `_thread_db_*` descriptors this file defines (libc does), by symbol name.
    let threadDebugDescriptors: [String: FieldDescriptor]

    /// The descriptors of the link_map fields the TLS layout is read from.
    static let threadDebugNames = ["_thread_db_link_map_l_tls_modid", "_thread_db_link_map_l_tls_offset"]

    /// Reads the facts of `elf`.
    init(elf: ELFFile) throws {
        var indirect: [UInt64: [UInt64]] = [:]
        var slots: [String: [SymbolSlot]] = [:]
        for relocation in try elf.relocations() {
            if relocation.type == HostArchitecture.indirectRelativeRelocationType {
                indirect[UInt64(bitPattern: relocation.addend), default: []].append(relocation.offset)
            } else if HostArchitecture.relocationKind(relocation.type) == .symbol, let symbol = relocation.symbol {
                slots[symbol.name, default: []].append(SymbolSlot(version: symbol.version, offset: relocation.offset))
            }
        }
        indirectSlots = indirect
        symbolSlots = slots
        dynamicAddress = elf.programHeaders.first { $0.type == ELFProgramHeader.PT_DYNAMIC }?.virtualAddress
        hasThreadLocalStorage = elf.programHeaders.contains { $0.type == ELFProgramHeader.PT_TLS }
        var descriptors: [String: FieldDescriptor] = [:]
        for symbol in try elf.dynamicSymbols() where symbol.isDefined && ObjectLinkFacts.threadDebugNames.contains(symbol.name) {
            // Each is `const uint32_t[3] = { size in bits, count, offset }` (glibc nptl_db/db_info.c).
            guard let bytes = try? elf.bytes(atVirtualAddress: symbol.value, count: 12) else { continue }
            func word(_ index: Int) -> UInt32 {
                (0..<4).reduce(0) { $0 | UInt32(bytes[index * 4 + $1]) << (8 * $1) }
            }
            descriptors[symbol.name] = FieldDescriptor(bits: word(0), count: word(1), offset: word(2))
        }
        threadDebugDescriptors = descriptors
    }
}

extension ProcessMemory {
    /// The little-endian word of `bytes` bytes (at most 8) at `address`, or nil when unreadable.
    func littleEndianWord(at address: UInt64, bytes: Int = 8) -> UInt64? {
        guard let read = try? self.read(at: address, count: bytes) else { return nil }
        return read.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}
