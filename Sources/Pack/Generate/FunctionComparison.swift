import Artifact

/// What a relocation refers to, in terms that survive a rebuild: symbols by name, string literals
/// by their text, other unnamed data by its contents (their offsets move when anything is added).
enum RelocationTarget: Hashable {
    /// A named function or variable (or an undefined symbol), `addend` counted from its start.
    case symbol(name: String, addend: Int64)
    /// A string of a mergeable string section (`.rodata.str1.1`, `.rodata.FUNC.str1.8`).
    case literal(String, [UInt8])
    /// Other data without a symbol (`.rodata.cst16` constants, jump tables): the section by name and contents.
    case unnamed(section: String, contents: [UInt8], addend: Int64)
}

/// Where a relocation of a compiled object points, resolved through section symbols.
enum RelocationPlace {
    /// A symbol this object does not define (a libc function, a global of another file).
    case external(ELFSymbol)
    /// A function or variable this object defines, `delta` bytes from its start (the addend, counted from the symbol).
    case named(ELFSymbol, delta: Int64)
    /// A place in a section with no function or variable there (literals, constants, jump tables).
    case unnamed(section: Int, addend: Int64)
}

extension RelocatableObject {
    /// Relocation types whose field is 8 bytes; every other type this generator meets patches 4.
    static let eightByteRelocations: Set<UInt32> = [1, 16, 17, 18, 24, 25]
    /// PC-relative relocation types: the field's address is subtracted, so the addend is -4 for "this symbol".
    static let pcRelativeRelocations: Set<UInt32> = [2, 4, 9, 24, 41, 42]

    /// The bytes a relocation rewrites when linked (and those a linker may relax around it: GOT
    /// loads become `lea`, thread-local sequences change model), relative to the section.
    static func maskedRange(of relocation: Relocation) -> Range<Int> {
        let start = Int(relocation.offset)
        switch relocation.type {
        case 41, 42: return max(0, start - 3)..<(start + 4)  // GOTPCRELX: opcode and REX may be rewritten
        case 19, 20, 22, 23: return max(0, start - 4)..<(start + 12)  // TLSGD/TLSLD/GOTTPOFF/TPOFF32 sequences
        default: return start..<(start + (eightByteRelocations.contains(relocation.type) ? 8 : 4))
        }
    }

    /// Where `relocation` points.
    func place(of relocation: Relocation) -> RelocationPlace {
        let symbol = self.symbol(at: relocation.symbolIndex)
        guard let section = self.section(of: symbol) else { return .external(symbol) }
        if symbol.kind != .section, isNamed(symbol) { return .named(symbol, delta: relocation.addend) }
        let addend = relocation.addend &+ Int64(bitPattern: symbol.value)
        // A reference through a section symbol: the variable or function at the place it reaches. The
        // field's own 4 bytes (and an immediate after it) separate the addend from that place.
        let candidates = Self.pcRelativeRelocations.contains(relocation.type) ? [4, 5, 6, 8].map { addend + $0 } : [addend]
        let named = namedSymbols(inSection: section.index)
        for offset in candidates {
            if let owner = named.last(where: { Int64(bitPattern: $0.value) <= offset && offset < Int64(bitPattern: $0.value &+ max($0.size, 1)) }) {
                return .named(owner, delta: addend - Int64(bitPattern: owner.value))
            }
        }
        return .unnamed(section: section.index, addend: addend)
    }

    /// Whether `symbol` names a function or variable (not a section, file, or assembler label such as `.LC0`).
    func isNamed(_ symbol: ELFSymbol) -> Bool {
        switch symbol.kind {
        case .function, .object, .tls, .gnuIndirectFunction, .common: return true
        case .none: return symbol.binding != .local && !symbol.name.isEmpty
        default: return false
        }
    }

    /// What `relocation` refers to, comparable across builds; `rename` maps this build's static-local
    /// names to the other build's.
    func target(of relocation: Relocation, rename: [String: String]) -> RelocationTarget {
        switch place(of: relocation) {
        case let .external(symbol): return .symbol(name: symbol.name, addend: relocation.addend)
        case let .named(symbol, delta): return .symbol(name: rename[symbol.name] ?? symbol.name, addend: delta)
        case let .unnamed(index, addend):
            let section = sections[index]
            if section.isStrings {
                let start = Int(addend) + (Self.pcRelativeRelocations.contains(relocation.type) ? 4 : 0)
                if start >= 0, start < section.bytes.count {
                    let end = section.bytes[start...].firstIndex(of: 0) ?? section.bytes.count
                    return .literal(section.name, Array(section.bytes[start..<end]))
                }
            }
            return .unnamed(section: section.name, contents: section.contents, addend: addend)
        }
    }
}

/// One object compiled in both builds (the same `relativePath`), compared function by function.
struct ComparedUnit {
    /// The object in the unpatched build, nil when the diff adds the file.
    var original: RelocatableObject?
    /// The object in the patched build.
    var patched: RelocatableObject
    /// The compile it came from.
    var compiled: CompiledObject
    /// Patched static-local names (`count.3`) → the original build's name (`count.1`) of the same variable.
    var staticLocalNames: [String: String]

    /// A function or variable of one build: its symbol and the section it lives in.
    struct Definition {
        var symbol: ELFSymbol
        var section: RelocatableObject.Section
    }

    /// The functions each build defines, by name.
    func functions(of object: RelocatableObject?) -> [String: Definition] {
        definitions(of: object) { $0.kind == .function }
    }

    /// The variables (data and thread-locals) each build defines, by name (the original build's for static locals).
    func variables(of object: RelocatableObject?, renamed: Bool) -> [String: Definition] {
        let found = definitions(of: object) { $0.kind == .object || $0.kind == .tls }
        guard renamed else { return found }
        return Dictionary(found.map { (staticLocalNames[$0.key] ?? $0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    private func definitions(of object: RelocatableObject?, _ include: (ELFSymbol) -> Bool) -> [String: Definition] {
        guard let object else { return [:] }
        var found: [String: Definition] = [:]
        for symbol in object.symbols where include(symbol) {
            guard let section = object.section(of: symbol), section.isAllocated, found[symbol.name] == nil else { continue }
            found[symbol.name] = Definition(symbol: symbol, section: section)
        }
        return found
    }

    /// Whether `a` (original build) and `b` (patched build) have the same bytes outside relocated
    /// fields and relocations that reach the same things.
    func same(_ a: Definition, _ b: Definition) -> Bool {
        guard let original, a.symbol.size == b.symbol.size else { return false }
        let aRange = Self.range(of: a), bRange = Self.range(of: b)
        let aRelocations = original.relocations(ofSection: a.section.index).filter { aRange.contains(Int($0.offset)) }
        let bRelocations = patched.relocations(ofSection: b.section.index).filter { bRange.contains(Int($0.offset)) }
        guard aRelocations.count == bRelocations.count else { return false }
        var aBytes = Array(a.section.contents[aRange]), bBytes = Array(b.section.contents[bRange])
        for (x, y) in zip(aRelocations, bRelocations) {
            guard x.offset - UInt64(aRange.lowerBound) == y.offset - UInt64(bRange.lowerBound), x.type == y.type,
                  original.target(of: x, rename: [:]) == patched.target(of: y, rename: staticLocalNames) else { return false }
            Self.clear(RelocatableObject.maskedRange(of: x), shiftedBy: aRange.lowerBound, in: &aBytes)
            Self.clear(RelocatableObject.maskedRange(of: y), shiftedBy: bRange.lowerBound, in: &bBytes)
        }
        return aBytes == bBytes
    }

    /// The bytes of a definition within its section (a function or variable without a size: to the section's end).
    static func range(of definition: Definition) -> Range<Int> {
        let start = Int(min(definition.symbol.value, definition.section.size))
        let end = definition.symbol.size == 0 ? Int(definition.section.size) : Int(min(definition.symbol.value + definition.symbol.size, definition.section.size))
        return start..<max(start, end)
    }

    /// Zeroes the bytes of `range` (section offsets) in `bytes`, which start at section offset `base`.
    static func clear(_ range: Range<Int>, shiftedBy base: Int, in bytes: inout [UInt8]) {
        for index in range where index - base >= 0 && index - base < bytes.count { bytes[index - base] = 0 }
    }

    /// Pairs static locals GCC numbered differently in the two builds (`count.0` → `count.2`): a base
    /// name with exactly one numbered definition on each side is the same variable.
    static func staticLocalNames(original: RelocatableObject?, patched: RelocatableObject) -> [String: String] {
        func numbered(_ object: RelocatableObject?) -> [String: [String]] {
            var byBase: [String: [String]] = [:]
            for symbol in object?.symbols ?? [] where symbol.binding == .local && (symbol.kind == .object || symbol.kind == .tls) {
                guard let dot = symbol.name.lastIndex(of: "."), dot != symbol.name.startIndex,
                      symbol.name[symbol.name.index(after: dot)...].allSatisfy(\.isNumber), symbol.name.last?.isNumber == true else { continue }
                byBase[String(symbol.name[..<dot]), default: []].append(symbol.name)
            }
            return byBase
        }
        let before = numbered(original), after = numbered(patched)
        var names: [String: String] = [:]
        for (base, newNames) in after {
            guard newNames.count == 1, let old = before[base], old.count == 1, old[0] != newNames[0] else { continue }
            names[newNames[0]] = old[0]
        }
        return names
    }
}

/// How the two builds of one object differ.
struct UnitDifference {
    /// Functions whose code changed (cold parts folded into their function).
    var changed: [String] = []
    /// Functions only the patched build has.
    var added: [String] = []
    /// Functions only the original build has (reported, nothing to do).
    var removed: [String] = []
    /// Variables only the patched build has that can travel in the patch object (static, not thread-local).
    var addedVariables: [String] = []
    /// Why a data change cannot be hotpatched, one line per variable.
    var refusals: [(symbol: String, reason: String)] = []
}

extension ComparedUnit {
    /// Compares the two builds of this object: functions same/changed/new/removed, variables unchanged
    /// or refused.
    func difference() -> UnitDifference {
        var result = UnitDifference()
        let before = functions(of: original), after = functions(of: patched)
        var changed: Set<String> = []
        for (name, definition) in after {
            if let old = before[name] {
                if !same(old, definition) { changed.insert(Self.owner(ofColdPart: name, among: after) ?? name) }
            } else if Self.owner(ofColdPart: name, among: after) == nil {
                result.added.append(name)
            }
        }
        result.added.sort()
        result.removed = before.keys.filter { after[$0] == nil && Self.owner(ofColdPart: $0, among: before) == nil }.sorted()

        let oldVariables = variables(of: original, renamed: false), newVariables = variables(of: patched, renamed: true)
        for (name, new) in newVariables.sorted(by: { $0.key < $1.key }) {
            let threadLocal = new.symbol.kind == .tls
            let what = threadLocal ? "thread-local variable" : (new.symbol.binding == .local ? "static variable" : "global variable")
            guard let old = oldVariables[name] else {
                if threadLocal {
                    result.refusals.append((name, "new \(what) \(name): the target's thread-local layout is fixed when each thread starts, and a patch object cannot add thread-locals; keep the state elsewhere (a static variable, or a field of an existing structure)"))
                } else if new.symbol.binding != .local {
                    result.refusals.append((name, "new \(what) \(name): other objects would link against it by name, but the running target does not define it; make it static (the patch object then carries it) or leave it out of the fix"))
                } else {
                    result.addedVariables.append(name)
                }
                continue
            }
            let constant = !threadLocal && new.symbol.binding == .local && !new.section.isWritable && !old.section.isWritable
            if constant, old.symbol.size != new.symbol.size || !same(old, new) {
                // Read-only data of this file alone (a const table, GCC's CSWTCH switch tables): the
                // patch carries the new copy, and every function here that reads it is replaced, so
                // none keeps reading the old one.
                result.addedVariables.append(new.symbol.name)
                for (user, definition) in after where before[user] != nil && reads(new.symbol.name, definition) {
                    changed.insert(Self.owner(ofColdPart: user, among: after) ?? user)
                }
                continue
            }
            if old.symbol.size != new.symbol.size {
                result.refusals.append((name, "\(what) \(name): its size changed from \(old.symbol.size) to \(new.symbol.size) bytes (a changed type or array length); the running target keeps the old layout, which unchanged code still uses"))
            } else if old.symbol.kind != new.symbol.kind || (old.section.isThreadLocal != new.section.isThreadLocal) {
                result.refusals.append((name, "\(what) \(name): it changed between an ordinary and a thread-local variable, which changes the target's thread-local layout"))
            } else if !same(old, new) {
                result.refusals.append((name, threadLocal
                    ? "\(what) \(name): its initial value changed; the target's thread-local layout and initial image are fixed when each thread starts. Keep the old initial value and set the new one in code"
                    : "\(what) \(name): its initial value changed; the running process keeps the value it has (the initializer ran at load time), so the fix would not take. Keep the old initializer and assign the new value in a changed function, or ship the fix as a release that restarts"))
            }
        }
        result.changed = changed.sorted()
        return result
    }

    /// Whether the patched build's `function` refers to the variable `name` of its object.
    private func reads(_ name: String, _ function: Definition) -> Bool {
        patched.relocations(ofSection: function.section.index).contains { relocation in
            if case let .named(symbol, _) = patched.place(of: relocation) { return symbol.name == name && symbol.binding == .local }
            return false
        }
    }

    /// The function a cold part (`NAME.cold`, `NAME.cold.N`) was split from, when it is one.
    static func owner(ofColdPart name: String, among functions: [String: Definition]) -> String? {
        guard let range = name.range(of: ".cold") else { return nil }
        let owner = String(name[..<range.lowerBound])
        return functions[owner] != nil && PublishChecks.isColdPart(name, of: owner) ? owner : nil
    }
}
