import Architecture
import Crypto
import LinuxSystem

/// What the publisher's tool derives for one target object: the redirections and references to
/// put in the channel, and warnings for the publisher to read.
public struct PlannedTarget: Sendable, Equatable {
    /// The target's build-id, which processes are matched by.
    public var buildID: BuildID
    /// One redirection per replaced function, in the order given.
    public var redirections: [FunctionRedirection]
    /// The target's non-exported symbols the patch object needs, by offset.
    public var references: [TargetSymbolReference]
    /// Warnings: short functions, compiler clones, inlining that cannot be checked.
    public var notes: [String]

    /// Describes a plan.
    public init(buildID: BuildID, redirections: [FunctionRedirection], references: [TargetSymbolReference], notes: [String]) {
        self.buildID = buildID
        self.redirections = redirections
        self.references = references
        self.notes = notes
    }
}

/// Turns "replace these functions of the target with these of the patch object" into checked
/// redirections (offset, size, hash of the original bytes), as `hotpatch-pack hotpatch` publishes them.
public enum RedirectionPlanner {
    /// The smallest function the short jump fits in.
    public static let minimumFunctionSize = UInt64(HostArchitecture.nearJumpLength)
    /// The size of the jump that reaches any address.
    public static let absoluteJumpSize = UInt64(HostArchitecture.farJumpLength)

    /// Plans the redirections; symbols come from the debug file's `.symtab`, else the target's
    /// `.symtab`, else its `.dynsym`. Every refusal is `ArtifactError.invalidHotpatch(id: target.path, …)`.
    public static func plan(target: ELFFile, debugFile: ELFFile?, patchObject: PatchObject,
                            replacements: [(symbol: String, replacement: String)],
                            references: [String]) throws -> PlannedTarget {
        func refuse(_ reason: String) -> ArtifactError { .invalidHotpatch(id: target.path, reason: reason) }
        guard let buildID = target.buildID else {
            throw refuse("the target has no GNU build-id note (link it with -Wl,--build-id)")
        }
        if let debugFile, debugFile.buildID != buildID {
            throw refuse("debug file \(debugFile.path) has build-id \(debugFile.buildID?.description ?? "none"), but the target has \(buildID)")
        }
        guard !replacements.isEmpty else { throw refuse("no functions to redirect") }

        var sources: [SymbolSource] = []
        if let debugFile {
            sources.append(SymbolSource(label: ".symtab of \(debugFile.path)", symbols: try debugFile.symbols()))
        }
        sources.append(SymbolSource(label: ".symtab of \(target.path)", symbols: try target.symbols()))
        sources.append(SymbolSource(label: ".dynsym of \(target.path)", symbols: try target.dynamicSymbols()))
        sources.removeAll { $0.symbols.isEmpty }
        let searched = sources.map(\.label).joined(separator: ", ")
        let allNames = Set(sources.flatMap { $0.symbols.map(\.name) })

        var redirections: [FunctionRedirection] = []
        var notes: [String] = []
        var unknown: [String] = []
        var seenNames: Set<String> = []
        var seenOffsets: [UInt64: String] = [:]
        for (name, replacement) in replacements {
            guard seenNames.insert(name).inserted else { throw refuse("function \(name) is listed twice") }
            guard let function = try find(name, in: sources, refuse: refuse) else {
                unknown.append(name)
                continue
            }
            switch function.kind {
            case .function: break
            case .gnuIndirectFunction:
                throw refuse(indirectFunctionRefusal(name, among: sources))
            default:
                throw refuse("\(name) is not a function (symbol type \(function.kind))")
            }
            guard function.size > 0 else {
                throw refuse("function \(name) at \(elfHex(function.value)) has size 0 (no .size directive?), so its bytes cannot be checked")
            }
            var padding: UInt64 = 0
            if function.size < minimumFunctionSize {
                padding = try entryHopPadding(for: function, named: name, target: target, sources: sources, refuse: refuse)
            }
            if let other = seenOffsets[function.value] {
                throw refuse("functions \(other) and \(name) are the same code at \(elfHex(function.value)); redirect only one of them")
            }
            seenOffsets[function.value] = name
            guard let patched = patchObject.exportedSymbol(named: replacement), patched.kind == .function else {
                throw refuse("replacement \(replacement) for \(name) is not a function exported by patch object \(patchObject.elf.path)")
            }
            let original: [UInt8]
            do {
                guard let count = Int(exactly: function.size + padding) else { throw refuse("function \(name) is too large") }
                original = try target.bytes(atVirtualAddress: function.value - padding, count: count)
            } catch ArtifactError.malformedELF {
                throw refuse("the \(function.size) bytes of \(name) at \(elfHex(function.value)) are not in the target file (is the target a debug file?)")
            }
            redirections.append(FunctionRedirection(
                symbol: name, offset: function.value, size: function.size,
                sha256: Hex.encode(SHA256.hash(data: original)), replacement: replacement, padding: padding))
            if padding > 0 {
                notes.append("\(name) is \(function.size) bytes: it is redirected the classic hotpatch way, a \(HostArchitecture.entryHopLength)-byte hop at its entry to a \(minimumFunctionSize)-byte jump in the \(padding) bytes of padding before it, so the patch object must be mapped within \(HostArchitecture.nearJumpReachText)")
            } else if function.size < absoluteJumpSize {
                notes.append("\(name) is \(function.size) bytes: it needs the patch object mapped within \(HostArchitecture.nearJumpReachText) for a \(minimumFunctionSize)-byte jump (the \(absoluteJumpSize)-byte absolute jump does not fit)")
            }
            notes += cloneNotes(for: name, among: allNames)
        }
        if !unknown.isEmpty {
            throw refuse("unknown function\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")) (searched \(searched.isEmpty ? "no symbol table: the target is stripped and has no .dynsym" : searched))")
        }
        notes.append("inlined copies of \(redirections.map(\.symbol).joined(separator: ", ")) cannot be seen without DWARF: a caller that inlined one keeps the old code")

        var planned: [TargetSymbolReference] = []
        for name in references {
            guard let need = patchObject.requiredSymbols.first(where: { $0.name == name }) else {
                throw refuse("reference \(name) is not needed: patch object \(patchObject.elf.path) has no relocation against an undefined \(name)")
            }
            guard !planned.contains(where: { $0.symbol == name }) else { continue }
            guard let symbol = try find(name, in: sources, refuse: refuse) else {
                throw refuse("reference \(name) is not defined in the target (searched \(searched))")
            }
            // A thread-local's st_value is its offset in the object's TLS block, not an address.
            let isThreadLocal = symbol.kind == .tls
            if isThreadLocal != need.isThreadLocal {
                throw refuse(isThreadLocal
                    ? "reference \(name) is a thread-local variable of the target, but patch object \(patchObject.elf.path) does not declare it __thread"
                    : "reference \(name) is not a thread-local variable of the target (symbol type \(symbol.kind)), but patch object \(patchObject.elf.path) declares it __thread")
            }
            planned.append(TargetSymbolReference(symbol: name, offset: symbol.value, kind: isThreadLocal ? .threadLocal : .address))
        }
        return PlannedTarget(buildID: buildID, redirections: redirections, references: planned, notes: notes)
    }

    /// For a function shorter than the near jump: the padding before its entry that an entry hop's
    /// near jump may use. Every byte from the end of the symbol before it to its entry must be
    /// filler, and at least the near jump's length of it; symbol sizes come from a `.symtab`, since
    /// `.dynsym` alone hides local functions that may lie just before.
    static func entryHopPadding(for function: ELFSymbol, named name: String, target: ELFFile, sources: [SymbolSource],
                                refuse: (String) -> ArtifactError) throws -> UInt64 {
        let near = minimumFunctionSize, hop = UInt64(HostArchitecture.entryHopLength)
        let tooShort = "function \(name) is \(function.size) bytes, shorter than the \(near)-byte jump that redirects it"
        guard function.size >= hop else {
            throw refuse("\(tooShort), and shorter than the \(hop)-byte hop that could reach a jump placed before it")
        }
        // GCC's -fpatchable-function-entry lists each no-op area it reserved before an entry: proof
        // enough, with or without a symbol table (a size-0 start-up symbol such as frame_dummy may
        // precede the first function, hiding where the gap starts).
        let entry = function.value
        if entry >= near, reservedEntryAreas(in: target).contains(entry - near),
           let reserved = try? target.bytes(atVirtualAddress: entry - near, count: Int(near)), HostArchitecture.isFiller(reserved) {
            return near
        }
        guard let table = sources.first(where: { $0.label.hasPrefix(".symtab") }) else {
            throw refuse("\(tooShort); a jump in the padding before it needs a .symtab (the unstripped target or --debug-file) to prove the bytes before it belong to no function")
        }
        // The gap starts where the last symbol before the entry ends (or where its section starts).
        var gapStart: UInt64 = entry >= 64 ? entry - 64 : 0
        for symbol in table.symbols where symbol.isDefined && symbol.value < entry
            && (symbol.kind == .function || symbol.kind == .object || symbol.kind == .gnuIndirectFunction) {
            let end = symbol.value &+ symbol.size
            if end > entry { throw refuse("\(tooShort), and \(symbol.name) overlaps its entry, so there is no padding before it") }
            gapStart = max(gapStart, end)
        }
        if let section = target.sections.first(where: { $0.address != 0 && $0.address <= entry && entry < $0.address &+ $0.size }) {
            gapStart = max(gapStart, section.address)
        }
        let gap = entry - gapStart
        let bytes = gap == 0 ? [] : ((try? target.bytes(atVirtualAddress: gapStart, count: Int(gap))) ?? [])
        guard gap >= near, HostArchitecture.isFiller(bytes) else {
            throw refuse("\(tooShort), and the \(gap) bytes before its entry are not \(near) or more bytes of padding (no-ops or int3) outside every symbol, where a jump could go instead (build with -fpatchable-function-entry=\(near),\(near) to reserve them)")
        }
        return near
    }

    /// The starts of the no-op areas GCC's `-fpatchable-function-entry` reserved, from its
    /// `__patchable_function_entries` section: the words themselves, or, in a position-independent
    /// object, the addends of the relative relocations that fill them.
    static func reservedEntryAreas(in target: ELFFile) -> Set<UInt64> {
        guard let section = target.section(named: "__patchable_function_entries"), section.size >= 8, section.size < 1 << 24 else { return [] }
        var starts: Set<UInt64> = []
        if let bytes = try? target.bytes(atVirtualAddress: section.address, count: Int(section.size)) {
            for index in stride(from: 0, to: bytes.count - 7, by: 8) {
                let word = bytes[index..<(index + 8)].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
                if word != 0 { starts.insert(word) }
            }
        }
        for relocation in (try? target.relocations()) ?? []
        where relocation.offset >= section.address && relocation.offset - section.address < section.size {
            starts.insert(UInt64(bitPattern: relocation.addend))
        }
        return starts
    }

    /// One symbol table to search, named for messages.
    struct SymbolSource {
        let label: String
        let symbols: [ELFSymbol]
    }

    /// Why the GNU indirect function `name` cannot be redirected, with the implementations the
    /// symbol tables offer: local functions named as glibc names them (`__NAME_variant`) or as
    /// GCC's target clones are (`NAME.variant.N`; `NAME.resolver` is the resolver itself). Global
    /// look-alikes such as `__strcpy_chk` are other functions.
    static func indirectFunctionRefusal(_ name: String, among sources: [SymbolSource]) -> String {
        let prefixes = ["__\(name)_", "\(name)."]
        let resolver = "\(name).resolver"
        func isImplementation(_ symbol: ELFSymbol) -> Bool {
            guard symbol.kind == .function, symbol.binding == .local, symbol.isDefined, symbol.name != resolver else { return false }
            return prefixes.contains { symbol.name.hasPrefix($0) }
        }
        let implementations = Set(sources.flatMap(\.symbols).filter(isImplementation).map(\.name)).sorted()
        let named = implementations.isEmpty
            ? "find them in the target's .symtab or its debug file (readelf -sW FILE | grep \(name))"
            : "candidates in the symbol tables: \(implementations.prefix(16).joined(separator: ", "))\(implementations.count > 16 ? ", …" : "")"
        return "\(name) is a GNU indirect function: its symbol is the resolver that picks an implementation when the program starts, not code that runs later, so redirecting it changes nothing; redirect the implementations it may select instead, each named as a function (\(named))"
    }

    /// The one definition of `name` in the first table that defines it: a global one wins (and,
    /// in `.dynsym`, its default version); several distinct local ones are ambiguous.
    static func find(_ name: String, in sources: [SymbolSource], refuse: (String) -> ArtifactError) throws -> ELFSymbol? {
        for source in sources {
            let defined = source.symbols.filter { $0.name == name && $0.isDefined && $0.kind != .section && $0.kind != .file }
            guard !defined.isEmpty else { continue }
            let global = defined.filter { $0.binding != .local }
            let preferred = global.filter { !$0.isHiddenVersion }
            let candidates = !preferred.isEmpty ? preferred : (!global.isEmpty ? global : defined)
            var byAddress: [UInt64: ELFSymbol] = [:]
            for symbol in candidates where byAddress[symbol.value] == nil { byAddress[symbol.value] = symbol }
            guard byAddress.count == 1, let only = byAddress.values.first else {
                let files = sourceFiles(of: name, in: source.symbols)
                let places = byAddress.keys.sorted().map { address in
                    elfHex(address) + (files[address].map { " (in \($0))" } ?? "")
                }.joined(separator: ", ")
                throw refuse("\(name) is ambiguous in \(source.label): \(byAddress.count) definitions at \(places); the patch can reach only one, so name a symbol that is unique (or rename the static in the source)")
            }
            return only
        }
        return nil
    }

    /// The source file (the STT_FILE symbol that precedes it in `.symtab`) of each local `name`, by value.
    static func sourceFiles(of name: String, in symbols: [ELFSymbol]) -> [UInt64: String] {
        var files: [UInt64: String] = [:]
        var current: String?
        for symbol in symbols {
            if symbol.kind == .file { current = symbol.name; continue }
            if symbol.name == name, symbol.binding == .local, let current { files[symbol.value] = current }
        }
        return files
    }

    /// Notes for GCC clones of `name` (NAME.isra.N, .constprop.N, .part.N, .cold and combinations).
    static func cloneNotes(for name: String, among names: Set<String>) -> [String] {
        let prefix = name + "."
        return names.filter { $0.hasPrefix(prefix) }.sorted().compactMap { clone in
            guard let tokens = cloneSuffix(String(clone.dropFirst(prefix.count))) else { return nil }
            if tokens == ["cold"] {
                return "\(clone) is the cold part GCC split out of \(name); only the original body of \(name) reaches it, and the jump bypasses that"
            }
            return "\(clone) is a GCC clone of \(name): calls that go through the clone escape the patch; redirect the clone too or check that nothing calls it"
        }
    }

    /// The clone kinds in a suffix such as "constprop.0.isra.0", or nil if it is not a clone suffix.
    static func cloneSuffix(_ suffix: String) -> [String]? {
        let parts = suffix.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var kinds: [String] = []
        var index = 0
        while index < parts.count {
            let part = parts[index]
            let numbered = index + 1 < parts.count && !parts[index + 1].isEmpty && parts[index + 1].allSatisfy(\.isASCIIDigit)
            switch part {
            case "isra", "constprop", "part":
                guard numbered else { return nil }
                index += 2
            case "cold":
                index += numbered ? 2 : 1
            default:
                return nil
            }
            kinds.append(part)
        }
        return kinds.isEmpty ? nil : kinds
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
