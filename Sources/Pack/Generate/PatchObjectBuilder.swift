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
        // Carried sections grow the list while their relocations are read (unnamed data they use).
        var done = 0
        while done < writer.sections.count {
            let key = outputSection.first { $0.value == done }!.key
            convertRelocations(of: contributions[key.contribution], number: key.contribution, section: key.index, output: done)
            done += 1
        }
        return writer
    }

    private mutating func carry(_ section: RelocatableObject.Section, number: Int) -> Int {
        let key = SectionKey(contribution: number, index: section.index)
        if let known = outputSection[key] { return known }
        writer.sections.append(.init(name: section.name, type: section.type, flags: section.flags, alignment: section.alignment,
                                     entrySize: section.entrySize, bytes: section.bytes, size: section.size))
        let index = writer.sections.count - 1
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
            let converted: RelocatableObjectWriter.Relocation?
            switch object.place(of: relocation) {
            case let .unnamed(section, addend):
                let target = object.sections[section]
                guard target.isAllocated, !target.isExecutable || outputSection[SectionKey(contribution: number, index: section)] != nil else {
                    refusals.append((owner, "\(owner) refers to an unnamed place in \(target.name), which the patch object cannot reach; build with -ffunction-sections so each function has a section and a symbol"))
                    continue
                }
                let carried = carry(target, number: number)
                converted = .init(offset: relocation.offset, type: relocation.type, symbol: sectionSymbol(carried), addend: addend)
            case let .named(symbol, delta):
                let symbolIndex = object.symbols.firstIndex { $0 == symbol }!
                if let local = outputSymbol[SectionKey(contribution: number, index: symbolIndex)] {
                    converted = .init(offset: relocation.offset, type: relocation.type, symbol: local, addend: delta)
                } else {
                    let name = contribution.unit.staticLocalNames[symbol.name] ?? symbol.name
                    converted = external(name, symbol: symbol, local: symbol.binding == .local, relocation: relocation, delta: delta,
                                         in: contribution, section: index, output: output, owner: owner)
                }
            case let .external(symbol):
                if let carried = carriedGlobal[symbol.name] {
                    converted = .init(offset: relocation.offset, type: relocation.type, symbol: carried, addend: relocation.addend)
                } else {
                    converted = external(symbol.name, symbol: symbol, local: false, relocation: relocation, delta: relocation.addend,
                                         in: contribution, section: index, output: output, owner: owner)
                }
            }
            guard let converted else { continue }
            writer.sections[output].relocations.append(converted)
            // The dynamic linker writes 8-byte words; in read-only data that would be a text relocation.
            if converted.type == 1, writer.sections[output].flags & RelocatableObject.SHF_EXECINSTR == 0 {
                writer.sections[output].flags |= RelocatableObject.SHF_WRITE
                writer.sections[output].flags &= ~(RelocatableObject.SHF_MERGE | RelocatableObject.SHF_STRINGS)
            }
        }
    }

    private func sectionSymbol(_ section: Int) -> Int {
        writer.symbols.firstIndex { $0.kind == RelocatableObjectWriter.STT_SECTION && $0.section == section }!
    }

    /// A relocation to something the target keeps: an undefined symbol, bound by name when the
    /// target (or a library) exports it, else through a reference at its released offset; the
    /// instruction is moved to the GOT or PLT where a PC-relative field could not reach the target.
    private mutating func external(_ name: String, symbol: ELFSymbol, local: Bool, relocation: RelocatableObject.Relocation, delta: Int64,
                                   in contribution: Contribution, section: Int, output: Int, owner: String) -> RelocatableObjectWriter.Relocation? {
        let threadLocal = symbol.kind == .tls
        var symbolName = name
        let definedInTarget: ELFSymbol?
        do {
            // A global the target exports binds by name; a static, or a hidden global, by its released offset.
            if local {
                definedInTarget = try released.definition(of: name, sourceFile: contribution.unit.patched.sourceFileName)
            } else if !released.exports(name) {
                definedInTarget = try released.definition(of: name, sourceFile: nil, globalOnly: true)
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
                refusals.append((owner, "\(owner) reads or writes \(name) of the target directly (a PC-relative memory operand at offset \(hex(relocation.offset))), which a patch object mapped away from the target cannot do without text relocations; access it through a pointer (or make it a global with default visibility, which -fPIC code reaches through the GOT)"))
                return nil
            }
        default:
            let kind = [20: "local-dynamic thread-local access", 21: "local-dynamic thread-local offset", 23: "local-exec thread-local access",
                        10: "absolute 32-bit address", 11: "absolute 32-bit address"][Int(type)] ?? "relocation type \(type)"
            refusals.append((owner, "\(owner) reaches \(name) of the target by a \(kind), which only works inside the target itself; build with -fPIC and, for thread-locals, the global-dynamic model"))
            return nil
        }
        return .init(offset: relocation.offset, type: type, symbol: target, addend: delta)
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
    static func link(_ object: String, into path: String) throws(PackError) {
        let arguments = ["cc", "-shared", "-nostdlib", "-Wl,--build-id", "-Wl,-z,noexecstack", "-o", path, object]
        let finished: ChildProcess.Finished
        do { finished = try ChildProcess.run("/usr/bin/env", arguments) } catch {
            throw PackError("Failed to run cc to link the patch object: \(error)")
        }
        guard finished.status == 0 else {
            throw PackError("Failed to link the patch object (\(arguments.joined(separator: " "))): exit status \(finished.status): \(String(decoding: finished.errorOutput, as: UTF8.self))")
        }
    }
}
