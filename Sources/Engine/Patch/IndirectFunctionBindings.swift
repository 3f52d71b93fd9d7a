import Artifact

/// Finds the implementation a process chose for a GNU indirect function (IFUNC) without running
/// its resolver: the dynamic linker already ran it and stored the result, and that word is read
/// from the process. Two places hold it: the GOT slot of the defining object's own IRELATIVE
/// relocation for that resolver (libc calls most of its IFUNCs that way), and a bound GLOB_DAT or
/// JUMP_SLOT slot of another object that imports the same symbol and version.
enum IndirectFunctionBindings {
    /// The implementation `definition` (an IFUNC of `object`) resolved to in the process, or why
    /// it cannot be known. `objects` are searched for bound slots in order (the executable first).
    static func implementation(of symbol: RequiredSymbol, definition: ELFSymbol, in object: LoadedObject,
                               objects: [LoadedObject], cache: ObjectCache,
                               memory: borrowing ProcessMemory) -> Result<UInt64, SymbolProblem> {
        if let facts = try? cache.linkFacts(of: object) {
            for slot in facts.indirectSlots[definition.value] ?? [] {
                if let value = boundCode(at: object.loadBias &+ slot, of: object, memory: memory) { return .success(value) }
            }
        }
        for other in objects where other != object {
            guard let facts = try? cache.linkFacts(of: other) else { continue }
            for slot in facts.symbolSlots[symbol.name] ?? [] where slot.version == definition.version {
                if let value = boundCode(at: other.loadBias &+ slot.offset, of: object, memory: memory) { return .success(value) }
            }
        }
        let name = definition.version.map { "\(symbol.name)@\($0)" } ?? symbol.name
        return .failure(SymbolProblem(text: "\(name) is a GNU indirect function in \(object.path) and this process has no bound slot for it (no IRELATIVE relocation for its resolver, no bound GOT entry in another object): its implementation cannot be known without running its resolver"))
    }

    /// The word at `address` if it points at code of `object`: a lazy PLT slot still holds a stub
    /// of its own object, and anything else is not what the resolver returned.
    private static func boundCode(at address: UInt64, of object: LoadedObject, memory: borrowing ProcessMemory) -> UInt64? {
        guard let value = memory.littleEndianWord(at: address),
              let mapping = object.mapping(containing: value), mapping.isExecutable else { return nil }
        return value
    }
}
