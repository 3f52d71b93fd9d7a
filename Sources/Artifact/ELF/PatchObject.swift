import Architecture
import LinuxSystem
/// One PT_LOAD of a patch object as the Engine maps it: offsets are from the object's load base.
public struct PatchSegment: Sendable, Equatable, Hashable {
    /// `p_vaddr` truncated to the page: where the mapping starts.
    public var mapOffset: UInt64
    /// The page-rounded span of the segment's memory size, from `mapOffset`.
    public var mapLength: UInt64
    /// `p_offset` truncated to the page: the file offset mapped at `mapOffset`.
    public var fileOffset: UInt64
    /// Bytes from `mapOffset` backed by the file (page-rounded end of the file part), 0 if none.
    public var fileBackedLength: UInt64
    /// `p_vaddr + p_filesz`: from here to the end of its page the mapping must be zeroed (bss).
    public var fileEnd: UInt64
    /// `p_vaddr + p_memsz`.
    public var memoryEnd: UInt64
    /// The protections to map it with.
    public var flags: ELFSegmentFlags
}

/// An undefined symbol the patch object needs from the target process.
public struct RequiredSymbol: Sendable, Hashable, CustomStringConvertible {
    /// The symbol name.
    public var name: String
    /// The GNU version it was linked against (e.g. "GLIBC_2.2.5"), if any.
    public var version: String?
    /// Whether it is a weak reference, which may stay unresolved (it then binds to 0).
    public var isWeak: Bool
    /// Whether the patch object declares it thread-local (STT_TLS): a `__thread` variable of the
    /// target, reached through its TLS block rather than an address.
    public var isThreadLocal: Bool

    /// Describes one required symbol.
    public init(name: String, version: String?, isWeak: Bool, isThreadLocal: Bool = false) {
        self.name = name
        self.version = version
        self.isWeak = isWeak
        self.isThreadLocal = isThreadLocal
    }

    /// The requirement `symbol` (an undefined entry of `.dynsym`) stands for.
    init(undefined symbol: ELFSymbol) {
        self.init(name: symbol.name, version: symbol.version, isWeak: symbol.binding == .weak,
                  isThreadLocal: symbol.kind == .tls)
    }

    /// `name@version`, as readelf prints it.
    public var description: String { version.map { "\(name)@\($0)" } ?? name }
}

/// What one required symbol is bound to in one process.
public enum SymbolBinding: Sendable, Equatable, Hashable {
    /// An address: a function or a variable.
    case address(UInt64)
    /// A thread-local variable of a loaded object, located through that object's TLS block.
    case threadLocal(ThreadLocalBinding)
}

/// Where a target's thread-local variable lives, as the process's dynamic linker laid it out.
public struct ThreadLocalBinding: Sendable, Equatable, Hashable {
    /// The object's TLS module id (glibc's `l_tls_modid`): its index in every thread's DTV.
    public var moduleID: UInt64
    /// The variable's offset in the object's TLS block (its symbol value).
    public var offset: UInt64
    /// Where the object's block lies relative to the thread pointer when it is in static TLS
    /// (glibc's `l_tls_offset`); nil when its block is allocated per thread on demand.
    public var staticBlockOffset: UInt64?
    /// The object, for messages.
    public var object: String

    /// Describes one thread-local binding.
    public init(moduleID: UInt64, offset: UInt64, staticBlockOffset: UInt64?, object: String) {
        self.moduleID = moduleID
        self.offset = offset
        self.staticBlockOffset = staticBlockOffset
        self.object = object
    }
}

/// One relocated word to write into the target process.
public struct RelocationWrite: Sendable, Equatable, Hashable {
    /// The absolute address of the 8-byte word.
    public var address: UInt64
    /// The value to store there (little-endian).
    public var value: UInt64

    /// The word `value` at `address`.
    public init(address: UInt64, value: UInt64) {
        self.address = address
        self.value = value
    }
}

/// A `cc -shared -fPIC` object validated for the Engine's own loader, which maps and relocates it
/// from outside the target process (no dlopen, no constructors, no thread-locals of its own; it may
/// use the target's).
public struct PatchObject: Sendable {
    /// The parsed object.
    public let elf: ELFFile
    /// Its PT_LOAD segments in address order.
    public let segments: [PatchSegment]
    /// The page-rounded end of the highest segment: the span to reserve at the load base.
    public let imageSize: UInt64
    /// Undefined symbols its relocations refer to, in order of first use.
    public let requiredSymbols: [RequiredSymbol]

    let relocations: [ELFRelocation]
    let exports: [String: ELFSymbol]

    /// Segments are mapped with this granularity.
    static let pageSize = HostArchitecture.pageSize
    /// A sanity bound: a patch object larger than this is a mistake, and keeping spans small keeps
    /// every later address computation far from overflow.
    static let maximumImageSize: UInt64 = 1 << 30

    /// Loads and validates the patch object at `path`.
    public init(path: String) throws {
        try self.init(elf: ELFFile.load(path: path))
    }

    /// Validates an already parsed object; every refusal is `ArtifactError.unsupportedPatchObject`.
    public init(elf: ELFFile) throws {
        self.elf = elf
        func refuse(_ reason: String) -> ArtifactError { .unsupportedPatchObject(path: elf.path, reason: reason) }

        guard elf.fileType == .sharedObject else {
            throw refuse("is \(elf.fileType), not a shared object (ET_DYN); build it with cc -shared -fPIC")
        }
        if let tls = elf.programHeaders.first(where: { $0.type == ELFProgramHeader.PT_TLS }) {
            throw refuse("defines thread-locals (a PT_TLS segment of \(tls.memorySize) bytes); a patch object cannot have thread-locals of its own (no thread of the target has room for them): keep the state in the target, or in ordinary variables of the patch")
        }
        let loads = elf.programHeaders.filter { $0.type == ELFProgramHeader.PT_LOAD }
            .sorted { $0.virtualAddress < $1.virtualAddress }
        guard !loads.isEmpty else { throw refuse("has no PT_LOAD segment") }

        var segments: [PatchSegment] = []
        for load in loads {
            let start = load.virtualAddress
            // Validated in ELFFile: vaddr + memsz and vaddr + filesz do not overflow.
            let fileEnd = start + load.fileSize
            let memoryEnd = start + load.memorySize
            guard load.offset % PatchObject.pageSize == start % PatchObject.pageSize else {
                throw refuse("PT_LOAD at \(elfHex(start)) has file offset \(elfHex(load.offset)), not congruent to its address modulo the page size, so it cannot be mapped from the file")
            }
            guard memoryEnd <= PatchObject.maximumImageSize else {
                throw refuse("PT_LOAD at \(elfHex(start)) ends at \(elfHex(memoryEnd)), beyond the \(PatchObject.maximumImageSize >> 20) MiB image limit")
            }
            let mapOffset = ByteRange.alignDown(start, PatchObject.pageSize)
            // Bounded by maximumImageSize, so rounding up cannot overflow.
            let mapEnd = ByteRange.alignUp(memoryEnd, PatchObject.pageSize) ?? memoryEnd
            let fileBacked = load.fileSize == 0 ? 0 : (ByteRange.alignUp(fileEnd, PatchObject.pageSize) ?? fileEnd) - mapOffset
            let segment = PatchSegment(
                mapOffset: mapOffset, mapLength: mapEnd - mapOffset,
                fileOffset: ByteRange.alignDown(load.offset, PatchObject.pageSize), fileBackedLength: fileBacked,
                fileEnd: fileEnd, memoryEnd: memoryEnd, flags: load.flags)
            if let previous = segments.last, previous.mapOffset + previous.mapLength > segment.mapOffset {
                throw refuse("PT_LOAD segments at \(elfHex(previous.mapOffset))–\(elfHex(previous.mapOffset + previous.mapLength)) and \(elfHex(segment.mapOffset))–\(elfHex(mapEnd)) overlap once rounded to pages")
            }
            segments.append(segment)
        }
        self.segments = segments
        imageSize = segments.map { $0.mapOffset + $0.mapLength }.max() ?? 0

        let dynamic = try elf.dynamicEntries()
        if dynamic.contains(where: { $0.tag == ELFDynamicEntry.DT_TEXTREL }) {
            throw refuse("has DT_TEXTREL (relocations in read-only code); build it with -fPIC")
        }
        if let flags = dynamic.first(where: { $0.tag == ELFDynamicEntry.DT_FLAGS }), flags.value & ELFDynamicEntry.DF_TEXTREL != 0 {
            throw refuse("has DF_TEXTREL (relocations in read-only code); build it with -fPIC")
        }
        if dynamic.contains(where: { $0.tag == ELFDynamicEntry.DT_RELR }) {
            throw refuse("has DT_RELR packed relative relocations, which are not supported; link without -z pack-relative-relocs")
        }

        let relocations = try elf.relocations()
        var required: [RequiredSymbol] = []
        var seen: Set<RequiredSymbol> = []
        for relocation in relocations {
            guard let kind = HostArchitecture.relocationKind(relocation.type) else {
                throw refuse("relocation \(HostArchitecture.relocationName(relocation.type)) at offset \(elfHex(relocation.offset)) (\(HostArchitecture.relocationRefusal(relocation.type))) is not supported")
            }
            if kind == .none { continue }
            guard loads.contains(where: { load in
                load.flags.contains(.writable) && relocation.offset >= load.virtualAddress
                    && relocation.offset - load.virtualAddress < load.memorySize
                    && load.memorySize - (relocation.offset - load.virtualAddress) >= 8
            }) else {
                throw refuse("relocation \(HostArchitecture.relocationName(relocation.type)) at offset \(elfHex(relocation.offset)) lies outside every writable PT_LOAD (a text relocation); build it with -fPIC")
            }
            if let symbol = relocation.symbol, symbol.kind == .gnuIndirectFunction {
                throw refuse("relocation \(HostArchitecture.relocationName(relocation.type)) at offset \(elfHex(relocation.offset)) refers to \(symbol.name), a GNU indirect function (its resolver would have to run in the target), which is not supported")
            }
            if let symbol = relocation.symbol, !symbol.isDefined {
                let need = RequiredSymbol(undefined: symbol)
                if seen.insert(need).inserted { required.append(need) }
            } else if kind.isThreadLocal {
                throw refuse("relocation \(HostArchitecture.relocationName(relocation.type)) at offset \(elfHex(relocation.offset)) refers to \(relocation.symbol.map { "\($0.name), a thread-local of the patch object itself" } ?? "the patch object's own thread-locals"); a patch object cannot have thread-locals of its own")
            }
        }
        self.relocations = relocations
        requiredSymbols = required

        let dynamicSymbols = try elf.dynamicSymbols()
        // Undefined STT_TLS symbols are the target's thread-locals, which the patch may use.
        for symbol in try dynamicSymbols + elf.symbols() where symbol.kind == .tls && symbol.isDefined {
            throw refuse("defines thread-local \(symbol.name); a patch object cannot have thread-locals of its own (no thread of the target has room for them)")
        }

        var exports: [String: ELFSymbol] = [:]
        for symbol in dynamicSymbols where symbol.isDefined && !symbol.isHiddenVersion
            && (symbol.binding == .global || symbol.binding == .weak)
            && (symbol.kind == .function || symbol.kind == .object) && exports[symbol.name] == nil {
            exports[symbol.name] = symbol
        }
        self.exports = exports
    }

    /// The link-time address of a defined GLOBAL/WEAK FUNC or OBJECT in `.dynsym` (default version).
    public func exportedAddress(of symbol: String) -> UInt64? {
        exports[symbol]?.value
    }

    /// The exported symbol itself, to tell functions from data.
    func exportedSymbol(named name: String) -> ELFSymbol? { exports[name] }

    /// The words to write once the object is mapped at `loadBase` (page-aligned), with `resolve`
    /// giving each undefined symbol's address (see `relocationWrites(loadBase:bind:)`).
    public func relocationWrites(loadBase: UInt64, resolve: (RequiredSymbol) -> UInt64?) throws -> [RelocationWrite] {
        try relocationWrites(loadBase: loadBase, bind: { need in resolve(need).map(SymbolBinding.address) })
    }

    /// The words to write once the object is mapped at `loadBase` (page-aligned): RELATIVE is
    /// base + addend; symbols the object defines bind to it (like -Bsymbolic); undefined ones go
    /// through `bind`, weak ones binding to address 0 when it finds nothing. Thread-local
    /// relocations need a thread-local binding: DTPMOD64 its module id, DTPOFF64 its offset in the
    /// block, TPOFF64 its offset from the thread pointer (static TLS only).
    public func relocationWrites(loadBase: UInt64, bind: (RequiredSymbol) -> SymbolBinding?) throws -> [RelocationWrite] {
        func refuse(_ reason: String) -> ArtifactError { .unsupportedPatchObject(path: elf.path, reason: reason) }
        guard ByteRange.add(loadBase, imageSize) != nil else {
            throw refuse("load base \(elfHex(loadBase)) leaves no room for the \(elfHex(imageSize))-byte image")
        }
        var cache: [RequiredSymbol: SymbolBinding] = [:]
        var writes: [RelocationWrite] = []
        writes.reserveCapacity(relocations.count)
        for relocation in relocations {
            // Validated in init: every type has a kind.
            let kind = HostArchitecture.relocationKind(relocation.type) ?? .none
            if kind == .none { continue }
            // Addresses and values wrap modulo 2^64 by definition of the relocation; the address itself
            // stays below loadBase + imageSize, checked above.
            let address = loadBase &+ relocation.offset
            let addend = UInt64(bitPattern: relocation.addend)
            // Named only in a refusal: formatting it for every word showed in the fleet's profile.
            var name: String { HostArchitecture.relocationName(relocation.type) }
            if kind == .relative {
                writes.append(RelocationWrite(address: address, value: loadBase &+ addend))
                continue
            }
            var binding = SymbolBinding.address(0)
            if let symbol = relocation.symbol {
                if symbol.isDefined {
                    // Validated in init: the object defines no thread-locals.
                    binding = .address(symbol.sectionIndex == ELFSymbol.SHN_ABS ? symbol.value : loadBase &+ symbol.value)
                } else {
                    let need = RequiredSymbol(undefined: symbol)
                    if let known = cache[need] {
                        binding = known
                    } else if let found = bind(need) {
                        binding = found
                        cache[need] = found
                    } else if need.isWeak && !kind.isThreadLocal {
                        cache[need] = binding
                    } else {
                        throw refuse("undefined symbol \(need.name)\(need.version.map { " (version \($0))" } ?? "") needed by relocation \(name) at offset \(elfHex(relocation.offset)) cannot be resolved in the target process")
                    }
                }
            }
            let value: UInt64
            switch (kind, binding) {
            case let (.symbol, .address(symbolAddress)): value = symbolAddress
            case let (.symbolPlusAddend, .address(symbolAddress)): value = symbolAddress &+ addend
            case let (.threadLocalModule, .threadLocal(local)): value = local.moduleID
            case let (.threadLocalOffset, .threadLocal(local)): value = local.offset &+ addend
            case let (.threadPointerOffset, .threadLocal(local)):
                guard let block = local.staticBlockOffset else {
                    throw refuse("relocation \(name) at offset \(elfHex(relocation.offset)) reaches thread-local \(relocation.symbol?.name ?? "?") of \(local.object) by the initial-exec model, but that object's thread-locals are not in static TLS in this process (it was loaded with dlopen); build the patch with the global-dynamic model (the default for -fPIC, no tls_model attribute)")
                }
                value = HostArchitecture.threadPointerOffset(blockOffset: block, variableOffset: local.offset &+ addend)
            case (_, .threadLocal):
                throw refuse("relocation \(name) at offset \(elfHex(relocation.offset)) needs the address of \(relocation.symbol?.name ?? "?"), which is a thread-local variable in the target; declare it __thread in the patch")
            default:
                throw refuse("relocation \(name) at offset \(elfHex(relocation.offset)) is thread-local, but \(relocation.symbol?.name ?? "its symbol") is not a thread-local variable in the target")
            }
            writes.append(RelocationWrite(address: address, value: value))
        }
        return writes
    }
}

extension RelocationKind {
    /// Whether the relocation locates a thread-local variable rather than an address.
    var isThreadLocal: Bool {
        switch self {
        case .threadLocalModule, .threadLocalOffset, .threadPointerOffset: return true
        case .none, .relative, .symbol, .symbolPlusAddend: return false
        }
    }
}
