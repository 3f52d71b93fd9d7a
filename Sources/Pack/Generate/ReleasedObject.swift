import Artifact
import LinuxSystem

/// The released object as hosts run it, with the symbol tables the generator looks functions and
/// variables up in: its debug file's `.symtab`, else its own, else `.dynsym`.
struct ReleasedObject {
    /// The released file.
    let elf: ELFFile
    /// Whether the unpatched rebuild of the target is byte-identical to it (a reproducible build).
    let isReproduced: Bool
    private let symbols: [ELFSymbol]
    private let fileOfSymbol: [Int: String]
    private let exported: Set<String>

    /// Reads the released object, its debug file when given, and compares it with the unpatched rebuild.
    init(_ builds: TargetBuilds) throws(PackError) {
        do {
            let bytes = try Files.read(builds.releasedPath, limit: ELFFile.maximumFileSize)
            elf = try ELFFile(path: builds.releasedPath, bytes: bytes)
            isReproduced = (try? Files.read(builds.originalObjectPath, limit: ELFFile.maximumFileSize)) == bytes
            let debug = try builds.debugFilePath.map { try ELFFile.load(path: $0) }
            if let debug, debug.buildID != elf.buildID {
                throw PackError("--debug-file \(debug.path) has build-id \(debug.buildID?.description ?? "none"), but the released object \(elf.path) has \(elf.buildID?.description ?? "none")")
            }
            let table = try debug?.symbols() ?? []
            let dynamic = try elf.dynamicSymbols()
            let own = try elf.symbols()
            symbols = !table.isEmpty ? table : (!own.isEmpty ? own : dynamic)
            exported = Set(dynamic.filter { $0.isDefined && ($0.binding == .global || $0.binding == .weak) && !$0.isHiddenVersion
                && $0.visibility != 2 && $0.visibility != 1 }.map(\.name))
        } catch let error as PackError {
            throw error
        } catch {
            throw PackError.wrapping(error, while: "read the released object \(builds.releasedPath)")
        }
        var files: [Int: String] = [:]
        var current: String?
        for (index, symbol) in symbols.enumerated() {
            if symbol.kind == .file { current = symbol.name; continue }
            if symbol.binding == .local, let current { files[index] = current }
        }
        fileOfSymbol = files
    }

    /// Whether other objects can bind `name` through the released object's dynamic symbol table.
    func exports(_ name: String) -> Bool { exported.contains(name) }

    /// The one definition of `name`: a global one, else the local one of `sourceFile` (the STT_FILE
    /// the compiler wrote), else the only local one. With `linkedGlobally`, locals count only when
    /// hidden globals the linker made local (ld lists them after an STT_FILE with an empty name),
    /// never a file's static.
    /// Nil when it is not there; throws when several locals of that name remain.
    func definition(of name: String, sourceFile: String?, linkedGlobally: Bool = false) throws(PackError) -> ELFSymbol? {
        let defined = symbols.indices.filter {
            symbols[$0].name == name && symbols[$0].isDefined && symbols[$0].kind != .section && symbols[$0].kind != .file
                && (!linkedGlobally || symbols[$0].binding != .local || (fileOfSymbol[$0] ?? "").isEmpty)
        }
        if let global = defined.first(where: { symbols[$0].binding != .local }) { return symbols[global] }
        var distinct = Dictionary(defined.map { (symbols[$0].value, $0) }, uniquingKeysWith: { first, _ in first })
        if distinct.count > 1, let sourceFile {
            distinct = distinct.filter { fileOfSymbol[$0.value] == sourceFile }
        }
        guard distinct.count <= 1 else {
            throw PackError("\(name) is defined \(distinct.count) times in the released object \(elf.path) (static symbols of several files), and the compiled object's file name does not tell which is meant")
        }
        return distinct.first.map { symbols[$0.value] }
    }

    /// Whether `name` is defined more than once (static symbols of several files share it).
    func isAmbiguous(_ name: String) -> Bool {
        Set(symbols.filter { $0.name == name && $0.isDefined && $0.kind != .section && $0.kind != .file }.map(\.value)).count > 1
    }

    /// Whether the released code of `symbol` is the unpatched build's `definition` of it: the same
    /// size and the same bytes outside the fields its relocations fill in (and the linker may relax).
    func matches(_ symbol: ELFSymbol, _ definition: ComparedUnit.Definition, in object: RelocatableObject) -> Bool {
        guard symbol.size == definition.symbol.size, let count = Int(exactly: symbol.size),
              var released = try? elf.bytes(atVirtualAddress: symbol.value, count: count) else { return false }
        let range = ComparedUnit.range(of: definition)
        var built = Array(definition.section.contents[range])
        guard built.count == released.count else { return false }
        for relocation in object.relocations(ofSection: definition.section.index) where range.contains(Int(relocation.offset)) {
            let masked = RelocatableObject.maskedRange(of: relocation)
            ComparedUnit.clear(masked, shiftedBy: range.lowerBound, in: &built)
            ComparedUnit.clear(masked, shiftedBy: range.lowerBound, in: &released)
        }
        return built == released
    }
}
