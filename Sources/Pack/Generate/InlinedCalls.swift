import CLibdw

/// Which functions the compiler inlined into which, read from an ELF file's DWARF with elfutils'
/// libdw: for every function with code (`DW_TAG_subprogram` with an address), the names of the
/// `DW_TAG_inlined_subroutine`s below it, nested ones included (a helper inlined into a helper
/// inlined into `f` counts for `f`), each named through `DW_AT_abstract_origin`. A function
/// changed between two builds is still running, unchanged, wherever it was inlined: every
/// function it is inlined into must be replaced too.
package struct InlinedCalls: Sendable, Equatable {
    /// Function (its symbol name: linkage name when it has one) → the functions inlined into it.
    package var callees: [String: Set<String>]

    /// An inline map.
    package init(callees: [String: Set<String>]) {
        self.callees = callees
    }

    /// The functions `callee` is inlined into, by name, sorted.
    package func callers(of callee: String) -> [String] {
        callees.filter { $0.value.contains(callee) }.map(\.key).sorted()
    }

    /// Reads the map from the DWARF of `path` (a linked object or a `.o`, whose relocations libdwfl
    /// applies). Throws when the file cannot be opened or has no DWARF (build it with -g).
    package static func read(path: String) throws(PackError) -> InlinedCalls {
        var session: OpaquePointer?
        defer { cdw_close(session) }
        guard let dwarf = cdw_open(path, &session) else {
            let reason = String(cString: cdw_last_error())
            throw PackError("Failed to read the DWARF of \(path) (\(reason)): compile with -g to let hotpatch-pack build see which functions are inlined where")
        }
        var callees: [String: Set<String>] = [:]
        var offset: Dwarf_Off = 0
        var unit = Dwarf_Die()
        while cdw_next_unit(dwarf, &offset, &unit) {
            visitChildren(of: &unit) { die in
                collectFunctions(&die, into: &callees)
            }
        }
        return InlinedCalls(callees: callees)
    }

    /// Records `die` when it is a function with code, else looks below it (functions sit in
    /// namespaces and classes in C++).
    private static func collectFunctions(_ die: inout Dwarf_Die, into callees: inout [String: Set<String>]) {
        if cdw_is_function_with_code(&die) {
            guard let name = cdw_function_name(&die).map({ String(cString: $0) }) else { return }
            var inlined = callees[name] ?? []
            collectInlined(below: &die, into: &inlined)
            callees[name] = inlined
        } else if !cdw_is_inlined_subroutine(&die) {
            visitChildren(of: &die) { child in collectFunctions(&child, into: &callees) }
        }
    }

    /// Adds the name of every inlined subroutine below `die`, at any depth (lexical blocks and
    /// inlined subroutines nest).
    private static func collectInlined(below die: inout Dwarf_Die, into names: inout Set<String>) {
        visitChildren(of: &die) { child in
            if cdw_is_inlined_subroutine(&child), let name = cdw_function_name(&child) {
                names.insert(String(cString: name))
            }
            collectInlined(below: &child, into: &names)
        }
    }

    private static func visitChildren(of die: inout Dwarf_Die, _ body: (inout Dwarf_Die) -> Void) {
        forEachDWARFChild(of: &die, body)
    }
}

/// Calls `body` with each child of `die` in order (dwarf_child, then dwarf_siblingof).
func forEachDWARFChild(of die: inout Dwarf_Die, _ body: (inout Dwarf_Die) -> Void) {
    var child = Dwarf_Die()
    guard dwarf_child(&die, &child) == 0 else { return }
    while true {
        body(&child)
        var next = Dwarf_Die()
        guard dwarf_siblingof(&child, &next) == 0 else { return }
        child = next
    }
}
