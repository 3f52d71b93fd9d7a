import Artifact
import LinuxSystem

/// Builds the patch object from the patched build's compiled objects: the changed and new
/// functions' sections, the unnamed read-only data and new static variables they use, and every
/// other reference turned into an undefined symbol the agent binds in the target (exported
/// symbols by name, everything else through a `ref` at its offset in the released object).
struct PatchObjectBuilder {
    /// What one compiled object contributes.
    struct Contribution {
        var unit: ComparedUnit
        /// Functions replacing released ones.
        var changed: [String]
        /// Functions only the patch has.
        var added: [String]
        /// Static variables only the patch has.
        var addedVariables: [String]
    }

    /// The suffix of a replacement's name in the patch object (`parse` → `parse.hotpatch`).
    static let replacementSuffix = ".hotpatch"

    private let released: ReleasedObject
    private var writer = RelocatableObjectWriter()
    /// (contribution, section index in its object) → output section.
    private var outputSection: [SectionKey: Int] = [:]
    /// (contribution, symbol index in its object) → output symbol.
    private var outputSymbol: [SectionKey: Int] = [:]
    /// Global function name → output symbol of the carried copy (for calls between objects).
    private var carriedGlobal: [String: Int] = [:]
    /// Undefined symbol name → output symbol.
    private var undefined: [String: Int] = [:]
    /// Reference name → its place in the released object.
    private(set) var references: [TargetSymbolReference] = []
    /// Released function → replacement.
    private(set) var replacements: [(symbol: String, replacement: String)] = []
    /// The section holding `AccessStub`s, once one is needed.
    private var stubSection: Int?
    /// Decodes carried code for the stubs, opened when first needed.
    private var disassembler: Disassembler?
    /// Why a function cannot travel, one line per problem.
    private(set) var refusals: [(symbol: String, reason: String)] = []

    private struct SectionKey: Hashable {
        var contribution: Int
        var index: Int
    }

    init(released: ReleasedObject) { self.released = released }

    /// Lays out every contribution's sections and symbols, then converts their relocations.
    mutating func build(_ contributions: [Contribution]) -> RelocatableObjectWriter {
        for (number, contribution) in contributions.enumerated() { carrySections(of: contribution, number: number) }
        for (number, contribution) in contributions.enumerated() { defineSymbols(of: contribution, number: number) }
        for (number, contribution) in contributions.enumerated() { carryUnwindTables(of: contribution, number: number) }
        // Carried sections grow the list while their relocations are read (unnamed data they use);
        // the unwind tables' relocations are converted already.
        var done = 0
        while done < writer.sections.count {
            if let key = outputSection.first(where: { $0.value == done })?.key {
                convertRelocations(of: contributions[key.contribution], number: key.contribution, section: key.index, output: done)
            }
            done += 1
        }
        return writer
    }

    private mutating func carry(_ section: RelocatableObject.Section, number: Int) -> Int {
        let key = SectionKey(contribution: number, index: section.index)
        if let known = outputSection[key] { return known }
        let index = writer.append(section)
        outputSection[key] = index
        writer.symbols.append(.init(name: "", kind: RelocatableObjectWriter.STT_SECTION, binding: RelocatableObjectWriter.STB_LOCAL, section: index))
        return index
    }

    private mutating func carrySections(of contribution: Contribution, number: Int) {
        let object = contribution.unit.patched
        let functions = contribution.unit.functions(of: object)
        let carried = contribution.changed + contribution.added
        let coldParts = functions.keys.filter { name in carried.contains { PublishChecks.isColdPart(name, of: $0) } }
        for name in (carried + coldParts).sorted() { if let definition = functions[name] { _ = carry(definition.section, number: number) } }
        let variables = contribution.unit.variables(of: object, renamed: false)
        for name in contribution.addedVariables { if let definition = variables[name] { _ = carry(definition.section, number: number) } }
    }

    /// Every named symbol of a carried section keeps its name as a local; each changed function also
    /// gets its global replacement name.
    private mutating func defineSymbols(of contribution: Contribution, number: Int) {
        let object = contribution.unit.patched
        for (index, symbol) in object.symbols.enumerated() where object.isNamed(symbol) && symbol.kind != .common {
            guard let output = outputSection[SectionKey(contribution: number, index: Int(symbol.sectionIndex))] else { continue }
            let kind: UInt8 = symbol.kind == .function ? RelocatableObjectWriter.STT_FUNC : RelocatableObjectWriter.STT_OBJECT
            writer.symbols.append(.init(name: symbol.name, kind: kind, binding: RelocatableObjectWriter.STB_LOCAL, section: output,
                                        value: symbol.value, size: symbol.size))
            outputSymbol[SectionKey(contribution: number, index: index)] = writer.symbols.count - 1
            if symbol.kind == .function, symbol.binding != .local { carriedGlobal[symbol.name] = writer.symbols.count - 1 }
            if symbol.kind == .function, contribution.changed.contains(symbol.name) {
                let replacement = symbol.name + Self.replacementSuffix
                writer.symbols.append(.init(name: replacement, kind: RelocatableObjectWriter.STT_FUNC, binding: RelocatableObjectWriter.STB_GLOBAL,
                                            section: output, value: symbol.value, size: symbol.size))
                replacements.append((symbol.name, replacement))
            }
        }
    }

    private mutating func convertRelocations(of contribution: Contribution, number: Int, section index: Int, output: Int) {
        let object = contribution.unit.patched
        let owner = object.namedSymbols(inSection: index).first { $0.kind == .function }?.name ?? object.sections[index].name
        for relocation in object.relocations(ofSection: index) {
            convert(relocation, at: relocation.offset, of: contribution, number: number, output: output, owner: owner)
        }
    }

    /// Converts one relocation of `contribution`'s object, applied at `offset` of output section `output`.
    private mutating func convert(_ relocation: RelocatableObject.Relocation, at offset: UInt64, of contribution: Contribution, number: Int,
                                  output: Int, owner: String) {
        let object = contribution.unit.patched
        var moved = relocation
        moved.offset = offset
        let converted: RelocatableObject.Relocation?
        switch object.place(of: relocation) {
        case let .unnamed(section, addend):
            let target = object.sections[section]
            guard target.isAllocated, !target.isExecutable || outputSection[SectionKey(contribution: number, index: section)] != nil else {
                refusals.append((owner, "\(owner) refers to an unnamed place in \(target.name), which the patch object cannot reach; build with -ffunction-sections so each function has a section and a symbol"))
                return
            }
            let carried = carry(target, number: number)
            converted = .init(offset: offset, type: relocation.type, symbolIndex: sectionSymbol(carried), addend: addend)
        case let .named(symbol, delta):
            let symbolIndex = object.symbols.firstIndex { $0 == symbol }!
            if let local = outputSymbol[SectionKey(contribution: number, index: symbolIndex)] {
                converted = .init(offset: offset, type: relocation.type, symbolIndex: local, addend: delta)
            } else if symbol.name.hasPrefix("DW.ref."), let section = object.section(of: symbol) {
                // The C++ personality routine's address, which unwind tables read indirectly: the
                // patch object keeps its own word, relocated against the routine by name (the
                // target's copy is hidden data a patch mapped away from it cannot reach).
                let carried = carry(section, number: number)
                converted = .init(offset: offset, type: relocation.type, symbolIndex: sectionSymbol(carried),
                                  addend: Int64(bitPattern: symbol.value) &+ delta)
            } else {
                let name = contribution.unit.staticLocalNames[symbol.name] ?? symbol.name
                converted = external(name, symbol: symbol, local: symbol.binding == .local, relocation: moved, delta: delta,
                                     in: contribution, output: output, owner: owner)
            }
        case let .external(symbol):
            if let carried = carriedGlobal[symbol.name] {
                converted = .init(offset: offset, type: relocation.type, symbolIndex: carried, addend: relocation.addend)
            } else {
                converted = external(symbol.name, symbol: symbol, local: false, relocation: moved, delta: relocation.addend,
                                     in: contribution, output: output, owner: owner)
            }
        }
        guard let converted else { return }
        writer.relocations[output, default: []].append(converted)
        // The dynamic linker writes 8-byte words; in read-only data that would be a text relocation.
        if converted.type == 1, writer.sections[output].flags & RelocatableObject.SHF_EXECINSTR == 0 {
            writer.sections[output].flags |= RelocatableObject.SHF_WRITE
            writer.sections[output].flags &= ~(RelocatableObject.SHF_MERGE | RelocatableObject.SHF_STRINGS)
        }
    }

    /// The unwind tables of the carried functions: each object's `.eh_frame` cut down to the FDEs
    /// of carried sections and the CIEs they use, so that an exception or a thread cancellation
    /// unwinds through a replacement (the agent registers the table with libgcc_s).
    private mutating func carryUnwindTables(of contribution: Contribution, number: Int) {
        let object = contribution.unit.patched
        guard let table = object.sections.first(where: { $0.name == ".eh_frame" && !$0.isNoBits }) else { return }
        let relocations = object.relocations(ofSection: table.index)
        let bytes = table.bytes
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        var kept: [UInt8] = []
        var keptRelocations: [(RelocatableObject.Relocation, UInt64)] = []
        var newCIE: [Int: Int] = [:]
        func copy(_ start: Int, _ end: Int) -> Int {
            let at = kept.count
            kept += bytes[start..<end]
            for relocation in relocations where Int(relocation.offset) >= start && Int(relocation.offset) < end {
                keptRelocations.append((relocation, UInt64(at + Int(relocation.offset) - start)))
            }
            return at
        }
        var position = 0
        while position + 8 <= bytes.count {
            let length = Int(u32(position))
            // A 64-bit record (length 0xffffffff) or a truncated one ends the walk: GCC writes neither.
            guard length >= 4, length != 0xffff_ffff, position + 4 + length <= bytes.count else { break }
            let end = position + 4 + length, identifier = Int(u32(position + 4))
            defer { position = end }
            guard identifier != 0, length >= 12, position + 4 - identifier >= 0 else { continue }
            // An FDE: kept when its first relocation (the start address) reaches a carried section.
            guard let start = relocations.first(where: { Int($0.offset) == position + 8 }) else { continue }
            let reached: Int?
            switch object.place(of: start) {
            case let .named(symbol, _): reached = Int(symbol.sectionIndex)
            case let .unnamed(section, _): reached = section
            case .external: reached = nil
            }
            guard let reached, outputSection[SectionKey(contribution: number, index: reached)] != nil else { continue }
            let cie = position + 4 - identifier
            if newCIE[cie] == nil, cie + 4 <= bytes.count, cie + 4 + Int(u32(cie)) <= bytes.count {
                newCIE[cie] = copy(cie, cie + 4 + Int(u32(cie)))
            }
            guard let cieAt = newCIE[cie] else { continue }
            let at = copy(position, end)
            let pointer = UInt32(at + 4 - cieAt)
            for shift in 0..<4 { kept[at + 4 + shift] = UInt8(truncatingIfNeeded: pointer >> (8 * UInt32(shift))) }
        }
        guard !kept.isEmpty else { return }
        var unwind = table
        unwind.bytes = kept
        unwind.size = UInt64(kept.count)
        let output = writer.append(unwind)
        for (relocation, offset) in keptRelocations {
            convert(relocation, at: offset, of: contribution, number: number, output: output, owner: ".eh_frame of \(contribution.unit.compiled.relativePath)")
        }
    }

    private func sectionSymbol(_ section: Int) -> Int {
        writer.symbols.firstIndex { $0.kind == RelocatableObjectWriter.STT_SECTION && $0.section == section }!
    }

    /// A relocation to something the target keeps: an undefined symbol, bound by name when the
    /// target (or a library) exports it, else through a reference at its released offset; the
    /// instruction is moved to the GOT or PLT where a PC-relative field could not reach the target.
    private mutating func external(_ name: String, symbol: ELFSymbol, local: Bool, relocation: RelocatableObject.Relocation, delta: Int64,
                                   in contribution: Contribution, output: Int, owner: String) -> RelocatableObject.Relocation? {
        let threadLocal = symbol.kind == .tls
        var symbolName = name
        let definedInTarget: ELFSymbol?
        do {
            // A global the target exports binds by name; a static, or a hidden global, by its released offset.
            if local {
                definedInTarget = try released.definition(of: name, sourceFile: contribution.unit.patched.sourceFileName)
            } else if !released.exports(name) {
                definedInTarget = try released.definition(of: name, sourceFile: nil, linkedGlobally: true)
            } else {
                definedInTarget = nil
            }
        } catch {
            refusals.append((owner, "\(owner) uses \(name): \(error)"))
            return nil
        }
        if local && definedInTarget == nil {
            refusals.append((owner, "\(owner) uses \(name), which the released object \(released.elf.path) does not define (was it optimised away in the released build?); the patch cannot reach it"))
            return nil
        }
        if let definedInTarget {
            let offset = definedInTarget.value
            var taken = Set(references.map(\.symbol))
            taken.formUnion(undefined.keys)
            if let same = references.first(where: { $0.offset == offset && ($0.symbol == name || $0.symbol.hasPrefix(name + ".ref")) }) {
                symbolName = same.symbol
            } else {
                var number = 1
                while taken.contains(symbolName) { number += 1; symbolName = "\(name).ref\(number)" }
                references.append(TargetSymbolReference(symbol: symbolName, offset: offset, kind: threadLocal ? .threadLocal : .address))
            }
        }
        let target = undefinedSymbol(symbolName, threadLocal: threadLocal, weak: symbol.binding == .weak)
        var type = relocation.type
        var bytes = writer.sections[output].bytes
        let field = Int(relocation.offset)
        switch type {
        case 4, 9, 41, 42, 1, 19, 22: break  // PLT32, GOTPCREL*, 64, TLSGD, GOTTPOFF: the linker makes the PLT or GOT entry
        case 2:  // PC32: a branch goes through the PLT, a lea becomes a GOT load; any other access cannot.
            let opcode = field >= 1 ? bytes[field - 1] : 0, before = field >= 2 ? bytes[field - 2] : 0
            if opcode == 0xe8 || opcode == 0xe9 || (before == 0x0f && opcode & 0xf0 == 0x80) {
                type = 4
            } else if before == 0x8d, opcode & 0xc7 == 0x05, delta == -4, field >= 3 {
                bytes[field - 2] = 0x8b
                type = (0x40...0x4f).contains(bytes[field - 3]) ? 42 : 41
                writer.sections[output].bytes = bytes
            } else {
                switch stub(at: field, in: output, reaching: target, delta: delta) {
                case let .success(jump): return jump
                case let .failure(refusal):
                    refusals.append((owner, "\(owner) reads or writes \(name) of the target directly (a PC-relative memory operand at offset \(hex(relocation.offset))), and \(refusal.reason); a patch object mapped away from the target reaches its data only through the GOT. Access it through a pointer, or make it a global with default visibility, which -fPIC code reaches through the GOT"))
                    return nil
                }
            }
        default:
            let kind = [20: "local-dynamic thread-local access", 21: "local-dynamic thread-local offset", 23: "local-exec thread-local access",
                        10: "absolute 32-bit address", 11: "absolute 32-bit address"][Int(type)] ?? "relocation type \(type)"
            refusals.append((owner, "\(owner) reaches \(name) of the target by a \(kind), which only works inside the target itself; build with -fPIC and, for thread-locals, the global-dynamic model"))
            return nil
        }
        return .init(offset: relocation.offset, type: type, symbolIndex: target, addend: delta)
    }

    /// Moves the instruction holding the PC-relative field at `field` of output section `output`
    /// into an `AccessStub` reaching undefined symbol `target` through the GOT; returns the
    /// relocation of the jump that replaces it.
    private mutating func stub(at field: Int, in output: Int, reaching target: Int, delta: Int64) -> Result<RelocatableObject.Relocation, StubRefusal> {
        guard writer.sections[output].flags & RelocatableObject.SHF_EXECINSTR != 0 else {
            return .failure(StubRefusal("it is data, not code"))
        }
        if disassembler == nil { disassembler = try? Disassembler() }
        let code = writer.sections[output].bytes
        guard let decoded = disassembler?.decode(code, at: 0).first(where: { Int($0.address) < field && field < Int($0.address) + $0.length }) else {
            return .failure(StubRefusal("the instruction there could not be decoded"))
        }
        let start = Int(decoded.address), length = decoded.length
        guard length >= 5 else { return .failure(StubRefusal("the instruction is shorter than a jump")) }
        let made: AccessStub
        switch AccessStub.make(for: Array(code[start..<(start + length)]), mnemonic: decoded.mnemonic, field: field - start, delta: delta) {
        case let .success(stub): made = stub
        case let .failure(refusal): return .failure(refusal)
        }
        if stubSection == nil {
            stubSection = writer.append(RelocatableObject.Section(
                index: 0, name: ".text.hotpatch.stubs", type: 1, flags: RelocatableObject.SHF_ALLOC | RelocatableObject.SHF_EXECINSTR,
                size: 0, alignment: 16, entrySize: 0, bytes: []))
            writer.symbols.append(.init(name: "", kind: RelocatableObjectWriter.STT_SECTION, binding: RelocatableObjectWriter.STB_LOCAL, section: stubSection))
        }
        guard let stubs = stubSection else { return .failure(StubRefusal("no stub section")) }
        let at = writer.sections[stubs].bytes.count
        writer.sections[stubs].bytes += made.bytes
        writer.sections[stubs].size = UInt64(writer.sections[stubs].bytes.count)
        writer.relocations[stubs, default: []].append(.init(offset: UInt64(at + made.globalOffsetField), type: 42, symbolIndex: target, addend: -4))
        writer.relocations[stubs, default: []].append(.init(offset: UInt64(at + made.returnField), type: 2, symbolIndex: sectionSymbol(output),
                                                        addend: Int64(start + length) - 4))
        // The instruction becomes `jmp stub`, padded with no-ops to its length.
        writer.sections[output].bytes.replaceSubrange(start..<(start + length), with: [0xe9, 0, 0, 0, 0] + [UInt8](repeating: 0x90, count: length - 5))
        return .success(.init(offset: UInt64(start + 1), type: 2, symbolIndex: sectionSymbol(stubs), addend: Int64(at) - 4))
    }

    private mutating func undefinedSymbol(_ name: String, threadLocal: Bool, weak: Bool) -> Int {
        if let known = undefined[name] { return known }
        writer.symbols.append(.init(name: name, kind: threadLocal ? RelocatableObjectWriter.STT_TLS : RelocatableObjectWriter.STT_NOTYPE,
                                    binding: weak ? RelocatableObjectWriter.STB_WEAK : RelocatableObjectWriter.STB_GLOBAL, section: nil))
        undefined[name] = writer.symbols.count - 1
        return writer.symbols.count - 1
    }

    /// Links `object` (a relocatable object) into the shared object at `path` with the system
    /// compiler: no start files or libraries (the target's process provides them), a build-id, no
    /// executable stack.
    /// An object holding only the zero word that ends an `.eh_frame` table (what crtend.o adds to
    /// a normal link, which `-nostdlib` leaves out), linked after the patch object: libgcc_s stops
    /// reading a table there, and the agent refuses to register a table without it. A separate
    /// object because ld drops a zero word inside an object's own `.eh_frame`.
    static func unwindTableEnd() -> RelocatableObjectWriter {
        var writer = RelocatableObjectWriter()
        _ = writer.append(RelocatableObject.Section(index: 0, name: ".eh_frame", type: 1, flags: RelocatableObject.SHF_ALLOC,
                                                    size: 4, alignment: 4, entrySize: 0, bytes: [0, 0, 0, 0]))
        return writer
    }

    /// Links `objects`, in order, into the shared patch object at `path`.
    static func link(_ objects: [String], into path: String) throws(PackError) {
        // No RELRO: it would end the writable segment at a page boundary, leaving no room after it
        // for the record that registers the unwind tables (the agent does not apply RELRO anyway).
        let arguments = ["cc", "-shared", "-nostdlib", "-Wl,--build-id", "-Wl,-z,noexecstack", "-Wl,-z,norelro", "-o", path] + objects
        let finished: ChildProcess.Finished
        do { finished = try ChildProcess.run("/usr/bin/env", arguments) } catch {
            throw PackError("Failed to run cc to link the patch object: \(error)")
        }
        guard finished.status == 0 else {
            throw PackError("Failed to link the patch object (\(arguments.joined(separator: " "))): exit status \(finished.status): \(String(decoding: finished.errorOutput, as: UTF8.self))")
        }
    }
}
