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

    /// Describes one required symbol.
    public init(name: String, version: String?, isWeak: Bool) {
        self.name = name
        self.version = version
        self.isWeak = isWeak
    }

    /// `name@version`, as readelf prints it.
    public var description: String { version.map { "\(name)@\($0)" } ?? name }
}

/// One relocated word to write into the target process.
public struct RelocationWrite: Sendable, Equatable, Hashable {
    /// The absolute address of the 8-byte word.
    public var address: UInt64
    /// The value to store there (little-endian).
    public var value: UInt64
}

/// A `cc -shared -fPIC` object validated for the Engine's own loader, which maps and relocates it
/// from outside the target process (no dlopen, no constructors, no TLS).
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
            throw refuse("has a PT_TLS segment (thread-local storage, \(tls.memorySize) bytes), which is not supported")
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
                let need = RequiredSymbol(name: symbol.name, version: symbol.version, isWeak: symbol.binding == .weak)
                if seen.insert(need).inserted { required.append(need) }
            }
        }
        self.relocations = relocations
        requiredSymbols = required

        let dynamicSymbols = try elf.dynamicSymbols()
        for symbol in try dynamicSymbols + elf.symbols() where symbol.kind == .tls {
            throw refuse("symbol \(symbol.name) is thread-local (STT_TLS), which is not supported")
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

    /// The words to write once the object is mapped at `loadBase` (page-aligned): RELATIVE is
    /// base + addend; symbols the object defines bind to it (like -Bsymbolic); undefined ones go
    /// through `resolve`, weak ones binding to 0 when it finds nothing.
    public func relocationWrites(loadBase: UInt64, resolve: (RequiredSymbol) -> UInt64?) throws -> [RelocationWrite] {
        func refuse(_ reason: String) -> ArtifactError { .unsupportedPatchObject(path: elf.path, reason: reason) }
        guard ByteRange.add(loadBase, imageSize) != nil else {
            throw refuse("load base \(elfHex(loadBase)) leaves no room for the \(elfHex(imageSize))-byte image")
        }
        var cache: [RequiredSymbol: UInt64] = [:]
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
            if kind == .relative {
                writes.append(RelocationWrite(address: address, value: loadBase &+ addend))
                continue
            }
            var symbolValue: UInt64 = 0
            if let symbol = relocation.symbol {
                if symbol.isDefined {
                    symbolValue = symbol.sectionIndex == ELFSymbol.SHN_ABS ? symbol.value : loadBase &+ symbol.value
                } else {
                    let need = RequiredSymbol(name: symbol.name, version: symbol.version, isWeak: symbol.binding == .weak)
                    if let known = cache[need] {
                        symbolValue = known
                    } else if let found = resolve(need) {
                        symbolValue = found
                        cache[need] = found
                    } else if need.isWeak {
                        symbolValue = 0
                        cache[need] = 0
                    } else {
                        throw refuse("undefined symbol \(need.name)\(need.version.map { " (version \($0))" } ?? "") needed by relocation \(HostArchitecture.relocationName(relocation.type)) at offset \(elfHex(relocation.offset)) cannot be resolved in the target process")
                    }
                }
            }
            let value = kind == .symbolPlusAddend ? symbolValue &+ addend : symbolValue
            writes.append(RelocationWrite(address: address, value: value))
        }
        return writes
    }
}
