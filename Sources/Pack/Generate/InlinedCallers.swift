/// The functions a changed function is inlined into, object by object, from the DWARF of the two
/// builds' compiled objects (`InlinedCalls`). Such a caller keeps running the old inlined copy
/// even when its own bytes came out the same (the inlined part was identical, only the callee's
/// out-of-line copy changed), so the generator replaces it too.
struct InlinedCallers {
    /// Per compiled object (`CompiledObject.relativePath`): caller symbol → the changed functions
    /// inlined into it, sorted.
    var callers: [String: [String: [String]]] = [:]
    /// Compiled objects whose DWARF could not be read (built without -g), by relative path.
    var objectsWithoutDWARF: [String] = []

    /// Looks up, in every unit, the functions into which one of `changed` (symbol names of any
    /// object: a `static inline` function of a header is compiled in each file that includes it)
    /// is inlined, reading the DWARF of both builds' objects.
    init(units: [ComparedUnit], changed: Set<String>) {
        let changedNames = Set(changed.map(Self.sourceName))
        guard !changedNames.isEmpty else { return }
        for unit in units {
            var map: [String: Set<String>] = [:]
            var readable = false
            for path in [unit.compiled.objectPath] + (unit.original.map { [$0.path] } ?? []) {
                guard let calls = try? InlinedCalls.read(path: path) else { continue }
                readable = true
                for (caller, callees) in calls.callees {
                    let hits = callees.intersection(changedNames)
                    if !hits.isEmpty { map[caller, default: []].formUnion(hits) }
                }
            }
            if !readable { objectsWithoutDWARF.append(unit.compiled.relativePath) }
            let functions = unit.functions(of: unit.patched)
            var found: [String: [String]] = [:]
            for (symbol, _) in functions where ComparedUnit.owner(ofColdPart: symbol, among: functions) == nil {
                guard let inlined = map[Self.sourceName(symbol)] else { continue }
                found[symbol] = inlined.filter { $0 != Self.sourceName(symbol) }.sorted()
            }
            found = found.filter { !$0.value.isEmpty }
            if !found.isEmpty { callers[unit.compiled.relativePath] = found }
        }
        objectsWithoutDWARF.sort()
    }

    /// The changed functions inlined into `symbol` of the object at `relativePath`, sorted.
    func inlined(into symbol: String, of relativePath: String) -> [String] {
        callers[relativePath]?[symbol] ?? []
    }

    /// The note for the report when some objects have no DWARF, else nil.
    var note: String? {
        guard !objectsWithoutDWARF.isEmpty else { return nil }
        let listed = objectsWithoutDWARF.prefix(5).joined(separator: ", ") + (objectsWithoutDWARF.count > 5 ? " and \(objectsWithoutDWARF.count - 5) more" : "")
        return "no DWARF in \(listed) (built without -g): functions into which a changed function is inlined were found only where their own code changed; add -g to the build's flags to let the generator find every one"
    }

    /// The name DWARF gives the function a symbol belongs to: GCC's clones (`f.constprop.0`,
    /// `f.part.0`, `f.isra.0`) and cold parts are described as `f`. C and C++ symbol names have no dots.
    static func sourceName(_ symbol: String) -> String {
        symbol.firstIndex(of: ".").map { String(symbol[..<$0]) } ?? symbol
    }
}
