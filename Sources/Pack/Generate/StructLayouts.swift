import CLibdw

/// The struct, class and union layouts of one compiled object and what reaches each, read from its
/// DWARF with libdw. A running target holds instances of its structures in the old layout (on the
/// heap, in globals, in callers' frames); code compiled for a new layout misreads them, and
/// unchanged code keeps the old one. `StructLayoutCheck` compares two builds with it.
package struct StructLayouts: Sendable, Equatable {
    /// One member of an aggregate: its name, where it starts (in bits), its width when it is a
    /// bit-field, and its type spelled out (typedefs resolved, named aggregates by name).
    package struct Member: Sendable, Equatable {
        package var name: String
        package var bitOffset: Int64
        package var bitSize: Int64
        package var type: String
    }

    /// An aggregate's size and members.
    package struct Layout: Sendable, Equatable {
        package var size: Int64
        package var members: [Member]
    }

    /// How a function reaches an aggregate: only through its own locals, by value (each call makes
    /// fresh ones), or through something that outlives the call or comes from elsewhere (a
    /// parameter, a pointer, the return value, a static).
    package enum Reach: Sendable, Equatable, Comparable {
        case ownLocals
        case shared
    }

    /// Aggregate key (`struct parser`, or the typedef name of an anonymous one) → its layout.
    package var layouts: [String: Layout] = [:]
    /// Function (linkage name, else name) → the aggregates it reaches and how.
    package var functions: [String: [String: Reach]] = [:]
    /// Variable declared or defined at file scope (or a function's static) → the aggregates its type reaches.
    package var variables: [String: Set<String>] = [:]

    /// Reads the layouts of `path` (a `.o` with DWARF; libdwfl applies its relocations). Throws
    /// when the file has no DWARF.
    package static func read(path: String) throws(PackError) -> StructLayouts {
        var session: OpaquePointer?
        defer { cdw_close(session) }
        guard let dwarf = cdw_open(path, &session) else {
            let reason = String(cString: cdw_last_error())
            throw PackError("Failed to read the DWARF of \(path) (\(reason)): compile with -g to let hotpatch-pack build compare structure layouts")
        }
        var reader = Reader()
        var offset: Dwarf_Off = 0
        var unit = Dwarf_Die()
        while cdw_next_unit(dwarf, &offset, &unit) {
            reader.visitScope(&unit, function: nil)
        }
        return reader.result
    }

    /// The walk over one file's DIEs, memoizing what each type reaches by its DIE offset.
    private struct Reader {
        var result = StructLayouts()
        /// Type DIE offset → the aggregates it reaches (true when through a pointer).
        var reached: [Dwarf_Off: [String: Bool]] = [:]
        var inProgress: Set<Dwarf_Off> = []
        /// Set when a type's walk met a type still being walked: its result is then incomplete.
        var cutAtBackEdge = false
        /// Anonymous aggregate offset → the typedef naming it.
        var typedefNames: [Dwarf_Off: String] = [:]

        /// Visits the children of a compile unit, namespace, function or block.
        mutating func visitScope(_ scope: inout Dwarf_Die, function: String?) {
            forEachChild(of: &scope) { die in visit(&die, function: function) }
        }

        mutating func visit(_ die: inout Dwarf_Die, function: String?) {
            switch cdw_kind_of(&die) {
            case CDW_TYPEDEF:
                var type = Dwarf_Die()
                if cdw_type_of(&die, &type), cdw_kind_of(&type) == CDW_AGGREGATE, cdw_own_name(&type) == nil,
                   let name = cdw_own_name(&die) {
                    typedefNames[cdw_offset(&type)] = String(cString: name)
                    record(&type)
                }
            case CDW_AGGREGATE:
                record(&die)
                visitScope(&die, function: function)  // C++: nested types and member functions
            case CDW_NAMESPACE:
                visitScope(&die, function: function)
            case CDW_FUNCTION:
                guard cdw_is_function_with_code(&die), let name = cdw_function_name(&die).map({ String(cString: $0) }) else {
                    visitScope(&die, function: function)
                    return
                }
                var uses = result.functions[name] ?? [:]
                var returned = Dwarf_Die()
                if cdw_type_of(&die, &returned) { merge(reach(&returned), as: .shared, into: &uses) }
                collectUses(below: &die, into: &uses)
                result.functions[name] = uses
            case CDW_VARIABLE:
                guard function == nil, let name = cdw_function_name(&die).map({ String(cString: $0) }) else { return }
                var type = Dwarf_Die()
                guard cdw_type_of(&die, &type) else { return }
                result.variables[name, default: []].formUnion(reach(&type).keys)
            default:
                return
            }
        }

        /// The parameters and variables below a function (blocks and inlined copies included),
        /// and the types declared inside it.
        mutating func collectUses(below die: inout Dwarf_Die, into uses: inout [String: Reach]) {
            forEachChild(of: &die) { child in
                let kind = cdw_kind_of(&child)
                var type = Dwarf_Die()
                if kind == CDW_PARAMETER, cdw_type_of(&child, &type) {
                    merge(reach(&type), as: .shared, into: &uses)
                } else if kind == CDW_VARIABLE, cdw_type_of(&child, &type) {
                    // A static local outlives the call; an ordinary local by value is the call's own.
                    let isStatic = cdw_is_declaration(&child) || cdw_has_static_location(&child)
                    merge(reach(&type), as: isStatic ? .shared : .ownLocals, into: &uses)
                } else if kind == CDW_AGGREGATE || kind == CDW_TYPEDEF {
                    visit(&child, function: "")
                }
                if kind == CDW_SCOPE { collectUses(below: &child, into: &uses) }
            }
        }

        /// Adds `found` to `uses`: an aggregate reached through a pointer is shared whatever holds it.
        func merge(_ found: [String: Bool], as reach: Reach, into uses: inout [String: Reach]) {
            for (key, throughPointer) in found {
                let how: Reach = throughPointer ? .shared : reach
                uses[key] = max(uses[key] ?? how, how)
            }
        }

        /// The aggregates `type` reaches: itself when it is one, its members' types, what its
        /// pointers, arrays, qualifiers and typedefs lead to; true for those reached through a pointer.
        mutating func reach(_ type: inout Dwarf_Die) -> [String: Bool] {
            let offset = cdw_offset(&type)
            if let known = reached[offset] { return known }
            guard inProgress.insert(offset).inserted else {
                // A back edge (struct A → B * → A): what A reaches is being added up further out.
                cutAtBackEdge = true
                return [:]
            }
            let cutOutside = cutAtBackEdge
            cutAtBackEdge = false
            defer {
                inProgress.remove(offset)
                cutAtBackEdge = inProgress.isEmpty ? false : cutAtBackEdge || cutOutside
            }
            var found: [String: Bool] = [:]
            func add(_ more: [String: Bool], throughPointer: Bool) {
                for (key, viaPointer) in more { found[key] = (found[key] ?? true) && (viaPointer || throughPointer) }
            }
            let kind = cdw_kind_of(&type)
            if kind == CDW_AGGREGATE {
                if let key = key(of: &type) { found[key] = false }
                forEachChild(of: &type) { member in
                    var memberType = Dwarf_Die()
                    if cdw_kind_of(&member) == CDW_MEMBER, cdw_type_of(&member, &memberType) {
                        add(reach(&memberType), throughPointer: false)
                    }
                }
            } else {
                var next = Dwarf_Die()
                if cdw_type_of(&type, &next) {
                    add(reach(&next), throughPointer: kind == CDW_INDIRECTION)
                }
            }
            // A result cut at a back edge lacks what the types further out reach: kept only for the
            // outermost type, whose own result includes all of it.
            if !cutAtBackEdge || inProgress.count == 1 { reached[offset] = found }
            return found
        }

        /// Records the layout of a complete aggregate that has a key.
        mutating func record(_ aggregate: inout Dwarf_Die) {
            guard !cdw_is_declaration(&aggregate), let key = key(of: &aggregate), result.layouts[key] == nil else { return }
            result.layouts[key] = Layout(size: cdw_byte_size(&aggregate), members: members(of: &aggregate, depth: 0))
        }

        /// `struct NAME`, `union NAME`, `class NAME`, or the name of the typedef of an anonymous one.
        func key(of aggregate: inout Dwarf_Die) -> String? {
            let tag = cdw_is_union(&aggregate) ? "union" : "struct"
            if let name = cdw_own_name(&aggregate) { return "\(tag) \(String(cString: name))" }
            return typedefNames[cdw_offset(&aggregate)]
        }

        func members(of aggregate: inout Dwarf_Die, depth: Int) -> [Member] {
            var members: [Member] = []
            let isUnion = cdw_is_union(&aggregate)
            forEachChild(of: &aggregate) { member in
                guard cdw_kind_of(&member) == CDW_MEMBER else { return }
                var memberType = Dwarf_Die()
                let type = cdw_type_of(&member, &memberType) ? spelling(of: &memberType, depth: depth + 1) : "void"
                let offset = cdw_member_bit_offset(&member)
                members.append(Member(name: cdw_own_name(&member).map { String(cString: $0) } ?? "",
                                      bitOffset: offset < 0 && isUnion ? 0 : offset, bitSize: cdw_bit_size(&member), type: type))
            }
            return members
        }

        /// A type written out: base types and named aggregates by name, typedefs with what they
        /// stand for, anonymous aggregates with their members (so a change inside them shows).
        func spelling(of type: inout Dwarf_Die, depth: Int) -> String {
            guard depth < 8 else { return "…" }
            var next = Dwarf_Die()
            let inner = cdw_type_of(&type, &next) ? spelling(of: &next, depth: depth + 1) : "void"
            let name = cdw_own_name(&type).map { String(cString: $0) }
            switch cdw_kind_of(&type) {
            case CDW_AGGREGATE:
                if let key = key(of: &type) { return key }
                let fields = members(of: &type, depth: depth).map { "\($0.type) \($0.name)@\($0.bitOffset)" }
                return (cdw_is_union(&type) ? "union" : "struct") + " {\(fields.joined(separator: "; "))} size \(cdw_byte_size(&type))"
            case CDW_TYPEDEF: return inner == name ? inner : "\(name ?? "?")=\(inner)"
            case CDW_INDIRECTION: return "\(inner) *"
            case CDW_QUALIFIER: return inner
            case CDW_ARRAY: return "\(inner)[\(cdw_array_count(&type))]"
            default: return name ?? "type size \(cdw_byte_size(&type))"
            }
        }

        func forEachChild(of die: inout Dwarf_Die, _ body: (inout Dwarf_Die) -> Void) {
            forEachDWARFChild(of: &die, body)
        }
    }
}

/// Refuses a changed structure layout that code of the running target would meet in the old
/// layout: one reached by unchanged code, by a variable, or by changed code through a parameter,
/// pointer, return value or static. A layout reached only by the changed functions' own locals
/// (by value: each call makes fresh ones) is allowed.
struct StructLayoutCheck {
    /// Refusals, by aggregate key, each with its reason.
    var refusals: [(symbol: String, reason: String)] = []
    /// Compiled objects whose DWARF could not be read in one of the builds, by relative path.
    var objectsWithoutDWARF: [String] = []

    /// Compares every unit's two builds; `replaced` holds the functions the patch replaces or adds.
    init(units: [ComparedUnit], replaced: Set<String>) {
        var reported: Set<String> = []
        for unit in units {
            guard let original = unit.original else { continue }
            guard let before = try? StructLayouts.read(path: original.path),
                  let after = try? StructLayouts.read(path: unit.compiled.objectPath) else {
                objectsWithoutDWARF.append(unit.compiled.relativePath)
                continue
            }
            let file = unit.compiled.relativePath
            for key in before.layouts.keys.sorted() where !reported.contains(key) {
                guard let old = before.layouts[key], let new = after.layouts[key], old != new else { continue }
                let change = Self.describe(old, new)
                let unchangedUser = before.functions.keys.sorted().first { name in
                    before.functions[name]?[key] != nil && !replaced.contains(name)
                }
                let sharedUser = after.functions.keys.sorted().first { after.functions[$0]?[key] == .shared }
                let variable = (before.variables.merging(after.variables) { $0.union($1) }).keys.sorted().first {
                    before.variables[$0]?.contains(key) == true || after.variables[$0]?.contains(key) == true
                }
                let holder: String?
                if let unchangedUser {
                    holder = "unchanged function \(unchangedUser) (\(file)) still uses the old layout"
                } else if let variable {
                    holder = "variable \(variable) (\(file)) holds or points to it, so instances in the old layout exist"
                } else if let sharedUser {
                    holder = "function \(sharedUser) (\(file)) reaches it through a parameter, pointer, return value or static, so it meets instances made in the old layout"
                } else {
                    holder = nil
                }
                guard let holder else { continue }
                reported.insert(key)
                refusals.append((key, "its layout changed (\(change)); \(holder). Keep the layout: put new state in a new static variable or a side table, or use space the structure already has; if the layout must change, ship the fix as a `fix` (installed, then a reboot)"))
            }
        }
        objectsWithoutDWARF.sort()
    }

    /// What changed between two layouts, in words: the size, then the first members that differ.
    static func describe(_ old: StructLayouts.Layout, _ new: StructLayouts.Layout) -> String {
        var parts: [String] = []
        if old.size != new.size { parts.append("size \(old.size) → \(new.size) bytes") }
        let oldByName = Dictionary(old.members.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newByName = Dictionary(new.members.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for member in new.members where oldByName[member.name] == nil { parts.append("member \(member.name) added") }
        for member in old.members where newByName[member.name] == nil { parts.append("member \(member.name) removed") }
        for member in old.members {
            guard let now = newByName[member.name] else { continue }
            if now.bitOffset != member.bitOffset {
                parts.append("member \(member.name) moved from offset \(Self.offsetText(member.bitOffset)) to \(Self.offsetText(now.bitOffset))")
            } else if now.type != member.type || now.bitSize != member.bitSize {
                parts.append("member \(member.name)'s type changed from \(member.type) to \(now.type)")
            }
        }
        if parts.isEmpty { parts.append("members reordered") }
        return parts.prefix(4).joined(separator: "; ") + (parts.count > 4 ? "; and \(parts.count - 4) more" : "")
    }

    private static func offsetText(_ bits: Int64) -> String {
        bits % 8 == 0 ? "\(bits / 8)" : "\(bits / 8) bit \(bits % 8)"
    }
}
