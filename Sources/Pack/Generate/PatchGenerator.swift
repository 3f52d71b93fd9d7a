import Artifact
import LinuxSystem

/// Compares the unpatched and patched builds of one target function by function (modulo
/// relocations), matches each changed function to the released object, and writes the patch
/// object: the inputs of an ordinary hotpatch target group. Throws, listing every refused change
/// (with what the publisher can do), when any change cannot be hotpatched or nothing executable changed.
func generatePatch(for builds: TargetBuilds) throws(PackError) -> GeneratedPatch {
    let patch = try generatePatchOrRefusals(for: builds)
    try PatchGenerator.throwIfRefused(patch.changes, object: Files.baseName(builds.releasedPath))
    return patch
}

/// `generatePatch(for:)` for a caller that reports refusals itself: a refused generation returns
/// no patch object (an empty path, no replacements) and its `changes` hold every refusal; only
/// an input that cannot be read at all throws.
func generatePatchOrRefusals(for builds: TargetBuilds) throws(PackError) -> GeneratedPatch {
    let released = try ReleasedObject(builds)
    let objectName = Files.baseName(builds.releasedPath)
    let units = try PatchGenerator.pairedUnits(builds)
    var changes: [GeneratedChange] = []
    var contributions: [PatchObjectBuilder.Contribution] = []
    var notes: [String] = []
    func refuse(_ symbol: String, _ reason: String) {
        changes.append(GeneratedChange(symbol: symbol, object: objectName, kind: .refused, reason: reason))
    }

    let differences = units.map { $0.difference() }
    // Every function a changed function is inlined into runs the old inlined copy: it is replaced too.
    let inlining = InlinedCallers(units: units, changed: Set(differences.flatMap(\.changed)))
    // C++ inline functions and template instances (weak, in COMDAT groups) are compiled into every
    // object that uses them, and the linker keeps one copy: the patch carries one too.
    var carriedVagueLinkage: Set<String> = []
    func isDuplicateVagueLinkage(_ name: String, _ definition: ComparedUnit.Definition?) -> Bool {
        definition?.symbol.binding == .weak && !carriedVagueLinkage.insert(name).inserted
    }
    for (unit, difference) in zip(units, differences) {
        for refusal in difference.refusals { refuse(refusal.symbol, refusal.reason) }
        let file = unit.compiled.relativePath
        let ownChanges = Set(difference.changed)
        let inlinedCallers = (inlining.callers[file] ?? [:]).keys.filter { !ownChanges.contains($0) && !difference.added.contains($0) }
        var changed: [String] = []
        for name in (difference.changed + inlinedCallers).sorted() {
            guard let original = unit.original, let built = unit.functions(of: original)[name] else { continue }
            if isDuplicateVagueLinkage(name, built) { continue }
            let inlined = inlining.inlined(into: name, of: file)
            let inlinedText = inlined.map { "changed function \($0)" }.joined(separator: ", ")
            // The refusals name the function and, for a caller, the changed function inlined into it.
            let subject = ownChanges.contains(name) ? "changed function \(name) (\(file))"
                : "function \(name) (\(file); \(inlinedText) is inlined into it)"
            let symbol: ELFSymbol?
            do { symbol = try released.definition(of: name, sourceFile: original.sourceFileName) } catch {
                refuse(name, "\(subject): \(error); the channel names a function by its symbol, so rename the static function in the source")
                continue
            }
            guard let symbol, symbol.kind == .function else {
                refuse(name, "\(subject) is not a function of the released object \(released.elf.path): the source does not match the released object (or the released build inlined it everywhere; patch its callers)")
                continue
            }
            if released.isAmbiguous(name) {
                refuse(name, "\(subject) is defined several times in the released object (static functions of several files); the channel names a function by its symbol, so rename the static function in the source")
                continue
            }
            if !released.isReproduced && !released.matches(symbol, built, in: original) {
                refuse(name, "\(subject): its released bytes (\(symbol.size) bytes at \(hex(symbol.value))) differ from the unpatched rebuild's (\(built.symbol.size) bytes), so the source does not match the released object; build the same source version with the same compiler and flags as the release")
                continue
            }
            changed.append(name)
            let replacedBy = "replaced by \(name)\(PatchObjectBuilder.replacementSuffix)"
            if !ownChanges.contains(name) {
                changes.append(GeneratedChange(symbol: name, object: objectName, kind: .inlinedCaller,
                                               reason: "its code is the same (\(file)), but \(inlinedText) is inlined into it; \(replacedBy)"))
            } else {
                changes.append(GeneratedChange(symbol: name, object: objectName, kind: .changedFunction,
                                               reason: "its code changed (\(file))" + (inlined.isEmpty ? "" : ", and \(inlinedText) is inlined into it") + "; \(replacedBy)"))
            }
        }
        let patchedFunctions = unit.functions(of: unit.patched)
        let added = difference.added.filter { !isDuplicateVagueLinkage($0, patchedFunctions[$0]) }
        for name in added {
            changes.append(GeneratedChange(symbol: name, object: objectName, kind: .newFunction,
                                           reason: "new in \(file); carried in the patch object"))
        }
        if !changed.isEmpty || !added.isEmpty || !difference.addedVariables.isEmpty {
            contributions.append(.init(unit: unit, changed: changed, added: added, addedVariables: difference.addedVariables))
        }
    }
    if let note = inlining.note { notes.append(note) }
    // A structure whose layout changed is refused where the running target meets it in the old layout.
    let replaced = Set(changes.filter { $0.kind != .refused }.map { InlinedCallers.sourceName($0.symbol) })
    let layouts = StructLayoutCheck(units: units, replaced: replaced)
    for refusal in layouts.refusals { refuse(refusal.symbol, refusal.reason) }
    if !layouts.objectsWithoutDWARF.isEmpty, inlining.note == nil {
        notes.append("no DWARF in \(layouts.objectsWithoutDWARF.prefix(5).joined(separator: ", ")) (built without -g): structure layouts were not compared; add -g to the build's flags")
    }
    let refused = changes.filter { $0.kind == .refused }
    if refused.isEmpty, !changes.contains(where: { $0.kind == .changedFunction }) {
        refuse("", "nothing to patch: the diff changes no function of \(objectName) that the released object runs")
    }
    if changes.contains(where: { $0.kind == .refused }) {
        return GeneratedPatch(patchObjectPath: "", replacements: [], references: [], changes: changes, notes: notes)
    }

    var builder = PatchObjectBuilder(released: released)
    let object = builder.build(contributions)
    for refusal in builder.refusals { refuse(refusal.symbol, refusal.reason) }
    if changes.contains(where: { $0.kind == .refused }) {
        return GeneratedPatch(patchObjectPath: "", replacements: [], references: [], changes: changes, notes: notes)
    }

    let relocatable = builds.workDirectory + "/" + objectName + ".hotpatch.o"
    let patchPath = builds.workDirectory + "/" + objectName + ".hotpatch.so"
    do { try Files.writeAtomically(relocatable, bytes: object.bytes(), mode: 0o644) } catch {
        throw PackError(error)
    }
    var inputs = [relocatable]
    if object.sections.contains(where: { $0.name == ".eh_frame" }) {
        let end = builds.workDirectory + "/" + objectName + ".hotpatch-unwind-end.o"
        do { try Files.writeAtomically(end, bytes: PatchObjectBuilder.unwindTableEnd().bytes(), mode: 0o644) } catch {
            throw PackError(error)
        }
        inputs.append(end)
    }
    try PatchObjectBuilder.link(inputs, into: patchPath)
    return GeneratedPatch(patchObjectPath: patchPath, replacements: builder.replacements, references: builder.references, changes: changes, notes: notes)
}

/// The steps of `generatePatch` that are not the comparison or the object itself.
enum PatchGenerator {
    /// The compiled objects of the patched build paired with the unpatched build's by relative
    /// path, keeping those linked into the target: their source file (STT_FILE) is one the linked
    /// target names, or every object when the linked targets have no symbol table.
    static func pairedUnits(_ builds: TargetBuilds) throws(PackError) -> [ComparedUnit] {
        var linkedFiles: Set<String> = []
        var linkedFunctions: Set<SizedFunction> = []
        for path in [builds.originalObjectPath, builds.patchedObjectPath] {
            do {
                let symbols = try ELFFile.load(path: path).symbols()
                linkedFiles.formUnion(symbols.filter { $0.kind == .file }.map(\.name))
                if path == builds.originalObjectPath {
                    linkedFunctions = Set(symbols.filter { $0.kind == .function }.map { SizedFunction(name: $0.name, size: $0.size) })
                }
            } catch {
                throw PackError.wrapping(error, while: "read the symbol table of the built target \(path)")
            }
        }
        let originals = Dictionary(builds.original.compiledObjects.map { ($0.relativePath, $0) }, uniquingKeysWith: { _, last in last })
        var units: [ComparedUnit] = []
        var seen: Set<String> = []
        for compiled in builds.patched.compiledObjects where seen.insert(compiled.relativePath).inserted {
            let patched = try RelocatableObject(path: compiled.objectPath)
            var original: RelocatableObject?
            if let old = originals[compiled.relativePath] { original = try RelocatableObject(path: old.objectPath) }
            if !linkedFiles.isEmpty, let file = patched.sourceFileName ?? original?.sourceFileName, !linkedFiles.contains(file) { continue }
            if patched.sections.contains(where: { $0.name.hasPrefix(".gnu.lto_") }) {
                throw PackError("Refusing to generate a hotpatch: \(compiled.objectPath) was compiled with link-time optimisation (-flto), so it holds compiler bytecode, not the machine code that runs; functions can only be compared in objects built without -flto (add -fno-lto to the build's flags for the generation)")
            }
            units.append(ComparedUnit(original: original, patched: patched, compiled: compiled,
                                      staticLocalNames: ComparedUnit.staticLocalNames(original: original, patched: patched)))
        }
        return linkedUnits(units, linkedFunctions: linkedFunctions)
    }

    /// A function by name and size, as a symbol table lists it.
    struct SizedFunction: Hashable {
        var name: String
        var size: UInt64
    }

    /// Keeps, of several objects compiled from one source file (libtool's PIC `.libs/x.o` and
    /// non-PIC `x.o`, a second variant of the library built from a copy with other flags), the
    /// ones the target linked: those whose every function has its name and size in the unpatched
    /// linked target, an identical second compile dropped (two files of one name in different
    /// folders both stay). When none matches, or the file is compiled once, every object stays.
    static func linkedUnits(_ units: [ComparedUnit], linkedFunctions: Set<SizedFunction>) -> [ComparedUnit] {
        let byFile = Dictionary(grouping: units.indices) { units[$0].patched.sourceFileName ?? units[$0].compiled.relativePath }
        var dropped: Set<Int> = []
        for (_, indices) in byFile where indices.count > 1 {
            var kept: [Set<SizedFunction>] = []
            for index in indices {
                guard let original = units[index].original else { continue }
                let functions = Set(original.symbols.filter { $0.kind == .function && original.section(of: $0) != nil }
                    .map { SizedFunction(name: $0.name, size: $0.size) })
                // Linked, and not a second identical compile of what is already kept.
                if !functions.isEmpty, functions.isSubset(of: linkedFunctions), !kept.contains(functions) {
                    kept.append(functions)
                } else {
                    dropped.insert(index)
                }
            }
            if kept.isEmpty { dropped.subtract(indices) }
        }
        return units.indices.filter { !dropped.contains($0) }.map { units[$0] }
    }

    /// Throws one error listing every refused change, when there is any.
    static func throwIfRefused(_ changes: [GeneratedChange], object: String) throws(PackError) {
        let refused = changes.filter { $0.kind == .refused }
        guard !refused.isEmpty else { return }
        let lines = refused.map { "  - " + ($0.symbol.isEmpty ? "" : "\($0.symbol): ") + $0.reason }
        throw PackError("Refusing to generate a hotpatch for \(object): \(refused.count == 1 ? "one change" : "\(refused.count) changes") cannot be hotpatched:\n" + lines.joined(separator: "\n"))
    }
}
