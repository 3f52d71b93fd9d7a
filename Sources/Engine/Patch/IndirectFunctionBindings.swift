import Artifact

/// Finds the implementation a process chose for a GNU indirect function (IFUNC) without running
/// its resolver: the dynamic linker already ran it and stored the result, and that word is read
/// from the process. Two places hold it: the GOT slot of the defining object's own IRELATIVE
/// relocation for that resolver (libc calls most of its IFUNCs that way), and a bound GLOB_DAT or
/// JUMP_SLOT slot of another object that imports the same symbol and version.
///
/// The words are the process's own memory, which its code (or a local user who owns it) may
/// have overwritten: a word is used only when it points into executable code of the defining
/// object. The dynamic linker fills an IRELATIVE slot before any code of the process runs, so
/// one that points anywhere else was not written by it, and the process is refused with the slot
/// and its word named rather than another source asked (the process itself calls through it).
enum IndirectFunctionBindings {
    /// The implementation `definition` (an IFUNC of `object`) resolved to in the process, or why
    /// it cannot be known. `objects` are searched for bound slots in order (the executable first).
    static func implementation(of symbol: RequiredSymbol, definition: ELFSymbol, in object: LoadedObject,
                               objects: [LoadedObject], cache: ObjectCache,
                               memory: borrowing ProcessMemory) -> Result<UInt64, SymbolProblem> {
        let name = definition.version.map { "\(symbol.name)@\($0)" } ?? symbol.name
        if let facts = try? cache.linkFacts(of: object) {
            for slot in facts.indirectSlots[definition.value] ?? [] {
                let address = object.loadBias &+ slot
                guard let value = memory.littleEndianWord(at: address) else { continue }
                guard isCode(value, of: object) else {
                    return .failure(SymbolProblem(text: "\(name) is a GNU indirect function in \(object.path), and the GOT slot of its IRELATIVE relocation at 0x\(String(address, radix: 16)) holds 0x\(String(value, radix: 16)), which is not code of that object: the process's memory is not what its dynamic linker wrote, so its implementation cannot be known"))
                }
                return .success(value)
            }
        }
        for other in objects where other != object {
            guard let facts = try? cache.linkFacts(of: other) else { continue }
            for slot in facts.symbolSlots[symbol.name] ?? [] where slot.version == definition.version {
                // A lazy PLT slot still holds a stub of its own object, and one bound to another
                // definition (an interposer) is not this one's: neither says what `object` chose.
                if let value = memory.littleEndianWord(at: other.loadBias &+ slot.offset), isCode(value, of: object) {
                    return .success(value)
                }
            }
        }
        return .failure(SymbolProblem(text: "\(name) is a GNU indirect function in \(object.path) and this process has no bound slot for it (no IRELATIVE relocation for its resolver, no bound GOT entry in another object): its implementation cannot be known without running its resolver"))
    }

    /// Whether `address` lies in an executable mapping of `object`.
    private static func isCode(_ address: UInt64, of object: LoadedObject) -> Bool {
        object.mapping(containing: address)?.isExecutable == true
    }
}
