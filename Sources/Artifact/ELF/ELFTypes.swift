import Architecture

/// The ELF object type (`e_type`).
public enum ELFFileType: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// ET_REL: an object file (`cc -c`).
    case relocatable
    /// ET_EXEC: a non-PIE executable, loaded at its link address.
    case executable
    /// ET_DYN: a shared object or a PIE executable.
    case sharedObject
    /// ET_CORE: a core dump.
    case core
    /// Any other `e_type` value.
    case other(UInt16)

    init(raw: UInt16) {
        switch raw {
        case 1: self = .relocatable
        case 2: self = .executable
        case 3: self = .sharedObject
        case 4: self = .core
        default: self = .other(raw)
        }
    }

    /// The readelf name, e.g. "ET_DYN".
    public var description: String {
        switch self {
        case .relocatable: return "ET_REL"
        case .executable: return "ET_EXEC"
        case .sharedObject: return "ET_DYN"
        case .core: return "ET_CORE"
        case let .other(raw): return "e_type \(elfHex(raw))"
        }
    }
}

/// The permissions of a segment (`p_flags`).
public struct ELFSegmentFlags: OptionSet, Sendable, Hashable {
    /// The raw `p_flags` bits.
    public let rawValue: UInt32
    /// Wraps raw `p_flags` bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// PF_R.
    public static let readable = ELFSegmentFlags(rawValue: 4)
    /// PF_W.
    public static let writable = ELFSegmentFlags(rawValue: 2)
    /// PF_X.
    public static let executable = ELFSegmentFlags(rawValue: 1)
}

/// One program header (`Elf64_Phdr`).
public struct ELFProgramHeader: Sendable, Equatable, Hashable {
    /// `p_type`, e.g. `ELFProgramHeader.PT_LOAD`.
    public var type: UInt32
    /// `p_flags`.
    public var flags: ELFSegmentFlags
    /// `p_offset`.
    public var offset: UInt64
    /// `p_vaddr`.
    public var virtualAddress: UInt64
    /// `p_filesz`.
    public var fileSize: UInt64
    /// `p_memsz`.
    public var memorySize: UInt64
    /// `p_align`.
    public var alignment: UInt64

    /// A loadable segment.
    public static let PT_LOAD: UInt32 = 1
    /// The dynamic section.
    public static let PT_DYNAMIC: UInt32 = 2
    /// Notes such as the build-id.
    public static let PT_NOTE: UInt32 = 4
    /// The thread-local storage template.
    public static let PT_TLS: UInt32 = 7
    /// The data to make read-only after relocation.
    public static let PT_GNU_RELRO: UInt32 = 0x6474_e552
}

/// One section header (`Elf64_Shdr`) with its name resolved.
public struct ELFSection: Sendable, Equatable, Hashable {
    /// The name from the section-name string table ("" when there is none).
    public var name: String
    /// `sh_type`.
    public var type: UInt32
    /// `sh_flags`.
    public var flags: UInt64
    /// `sh_addr`.
    public var address: UInt64
    /// `sh_offset`.
    public var offset: UInt64
    /// `sh_size`.
    public var size: UInt64
    /// `sh_link`.
    public var link: UInt32
    /// `sh_info`.
    public var info: UInt32
    /// `sh_entsize`.
    public var entrySize: UInt64
    /// `sh_addralign`, needed to pad notes.
    var addressAlignment: UInt64 = 0

    static let SHT_NULL: UInt32 = 0
    static let SHT_SYMTAB: UInt32 = 2
    static let SHT_STRTAB: UInt32 = 3
    static let SHT_DYNAMIC: UInt32 = 6
    static let SHT_NOTE: UInt32 = 7
    static let SHT_NOBITS: UInt32 = 8
    static let SHT_DYNSYM: UInt32 = 11
    static let SHT_GNU_verdef: UInt32 = 0x6fff_fffd
    static let SHT_GNU_verneed: UInt32 = 0x6fff_fffe
    static let SHT_GNU_versym: UInt32 = 0x6fff_ffff
}

/// A symbol's type (`ELF64_ST_TYPE`).
public enum ELFSymbolKind: Sendable, Hashable {
    /// STT_NOTYPE.
    case none
    /// STT_OBJECT: data.
    case object
    /// STT_FUNC: code.
    case function
    /// STT_SECTION.
    case section
    /// STT_FILE: a source file name.
    case file
    /// STT_COMMON: an unallocated common block.
    case common
    /// STT_TLS: a thread-local variable.
    case tls
    /// STT_GNU_IFUNC: its value is a resolver that picks the implementation at load time.
    case gnuIndirectFunction
    /// Any other type value.
    case other(UInt8)

    init(raw: UInt8) {
        switch raw {
        case 0: self = .none
        case 1: self = .object
        case 2: self = .function
        case 3: self = .section
        case 4: self = .file
        case 5: self = .common
        case 6: self = .tls
        case 10: self = .gnuIndirectFunction
        default: self = .other(raw)
        }
    }
}

/// A symbol's binding (`ELF64_ST_BIND`).
public enum ELFSymbolBinding: Sendable, Hashable {
    /// STB_LOCAL: visible only inside its object.
    case local
    /// STB_GLOBAL.
    case global
    /// STB_WEAK: may stay undefined, or be overridden by a global definition.
    case weak
    /// Any other binding value (e.g. STB_GNU_UNIQUE).
    case other(UInt8)

    init(raw: UInt8) {
        switch raw {
        case 0: self = .local
        case 1: self = .global
        case 2: self = .weak
        default: self = .other(raw)
        }
    }
}

/// One symbol table entry (`Elf64_Sym`), with its GNU version when it comes from `.dynsym`.
public struct ELFSymbol: Sendable, Hashable {
    /// The symbol's name, without any `@VERSION` suffix.
    public var name: String
    /// `st_value`: the link-time address for defined symbols of executables and shared objects.
    public var value: UInt64
    /// `st_size`.
    public var size: UInt64
    /// The symbol's type.
    public var kind: ELFSymbolKind
    /// The symbol's binding.
    public var binding: ELFSymbolBinding
    /// `ELF64_ST_VISIBILITY(st_other)`: 0 default, 1 internal, 2 hidden, 3 protected.
    public var visibility: UInt8
    /// `st_shndx`: 0 (SHN_UNDEF) for undefined symbols, 0xfff1 (SHN_ABS) for absolute ones.
    public var sectionIndex: UInt16
    /// The GNU symbol version name (from `.gnu.version_d` or `.gnu.version_r`), nil when unversioned.
    public var version: String?
    /// Whether the version is hidden (`sym@VER`, not the default `sym@@VER`).
    public var isHiddenVersion = false

    /// Whether this object defines the symbol (it is not SHN_UNDEF).
    public var isDefined: Bool { sectionIndex != ELFSymbol.SHN_UNDEF }

    static let SHN_UNDEF: UInt16 = 0
    static let SHN_ABS: UInt16 = 0xfff1
}

/// One entry of the dynamic section (`Elf64_Dyn`).
public struct ELFDynamicEntry: Sendable, Equatable, Hashable {
    /// `d_tag`, e.g. 1 for DT_NEEDED.
    public var tag: Int64
    /// `d_val` / `d_ptr`.
    public var value: UInt64

    static let DT_NULL: Int64 = 0
    static let DT_PLTRELSZ: Int64 = 2
    static let DT_RELA: Int64 = 7
    static let DT_RELASZ: Int64 = 8
    static let DT_RELAENT: Int64 = 9
    static let DT_REL: Int64 = 17
    static let DT_PLTREL: Int64 = 20
    static let DT_TEXTREL: Int64 = 22
    static let DT_JMPREL: Int64 = 23
    static let DT_FLAGS: Int64 = 30
    static let DT_RELR: Int64 = 36
    /// DT_DEBUG: the dynamic linker stores the address of its `r_debug` here at start-up.
    public static let DT_DEBUG: Int64 = 21
    static let DF_TEXTREL: UInt64 = 0x4
}

/// One RELA relocation of the dynamic section (`Elf64_Rela`), its symbol taken from `.dynsym`.
public struct ELFRelocation: Sendable, Equatable, Hashable {
    /// `r_offset`: the link-time address of the word to relocate.
    public var offset: UInt64
    /// `ELF64_R_TYPE(r_info)`: a number of the architecture's psABI (see `Architecture.relocationKind`).
    public var type: UInt32
    /// `r_addend`.
    public var addend: Int64
    /// The referenced symbol; nil when the symbol index is 0.
    public var symbol: ELFSymbol?
}

/// What the process scanner needs to recognise a mapped object, read without loading the file.
public struct ELFIdentity: Sendable, Hashable {
    /// The NT_GNU_BUILD_ID note, if the object has one.
    public var buildID: BuildID?
    /// The object type.
    public var fileType: ELFFileType
    /// `p_vaddr` of the lowest PT_LOAD, truncated to 4 KiB: subtract it from that mapping's start to get the load bias.
    public var firstLoadVirtualAddress: UInt64
    /// `p_offset` of the lowest PT_LOAD, truncated to 4 KiB, as `/proc/PID/maps` shows that mapping's offset.
    public var firstLoadFileOffset: UInt64
    /// Zero bytes an executable segment maps executable but does not use, if any (the largest run).
    public var spareCode: SpareCode? = nil
    /// `p_vaddr` of its PT_GNU_RELRO, the data the dynamic linker makes read-only once it relocated
    /// the object; nil for an object linked without (`-z norelro`).
    public var relroVirtualAddress: UInt64? = nil
    /// `p_memsz` of its PT_GNU_RELRO; nil without one.
    public var relroMemorySize: UInt64? = nil

    /// The link-time pages the dynamic linker makes read-only once it relocated the object: its
    /// RELRO with both ends rounded down to a page, as glibc's `_dl_protect_relro` rounds them.
    /// nil when that leaves no page (no RELRO, or one that does not reach the end of the page it
    /// starts in): the linker then makes no `mprotect` that would mark the end of the object's
    /// relocation.
    public var relroProtectedPages: Range<UInt64>? {
        guard let start = relroVirtualAddress, let size = relroMemorySize, let end = ByteRange.add(start, size) else { return nil }
        let pages = ByteRange.alignDown(start, HostArchitecture.pageSize)..<ByteRange.alignDown(end, HostArchitecture.pageSize)
        return pages.isEmpty ? nil : pages
    }
}

/// The bytes from the end of an executable segment to the end of its last page (or to the next
/// segment's first page): mapped with the segment's code, part of no section, zero in the file
/// (the linker's padding before the next segment's page).
public struct SpareCode: Sendable, Hashable {
    /// Where they start, as a link-time address (add the load bias).
    public var virtualAddress: UInt64
    /// How many there are.
    public var length: UInt64

    /// Describes a run of spare bytes.
    public init(virtualAddress: UInt64, length: UInt64) {
        self.virtualAddress = virtualAddress
        self.length = length
    }
}
