import Artifact

/// Why one required symbol cannot be bound in a process.
struct SymbolProblem: Error, Sendable {
    /// What is wrong, in words a publisher can act on.
    var text: String
}

/// Resolves a patch object's undefined symbols the way the process's own dynamic linker would see
/// them: explicit `refs` first (non-exported target symbols by offset), then the main executable,
/// then the other loaded objects in address order. GNU indirect functions and thread-locals need
/// the process's memory: `readProcessBindings` finds them before `resolve` is asked.
struct SymbolResolver {
    private let objects: [LoadedObject]
    private let references: [String: UInt64]
    private let cache: ObjectCache
    /// Bindings read from the process (indirect functions, thread-locals).
    private var processBindings: [RequiredSymbol: SymbolBinding] = [:]
    /// Why a symbol could not be resolved, when it was found but is unusable; by symbol name.
    private(set) var problems: [String: String] = [:]
    /// Each object's export table as the cache gave it (nil: not asked yet; .some(nil): none), and
    /// each symbol's definition once found: every symbol is looked up twice (its process binding,
    /// then its relocation), each time through the cache's lock, which every worker shares: a third
    /// of the lookups' samples were spent waiting on it (docs/PERFORMANCE.md, run 18).
    private var exportTables: [[String: [ELFSymbol]]??]
    private var definitions: [RequiredSymbol: (object: LoadedObject, symbol: ELFSymbol)?] = [:]

    /// The process's loaded objects, the executable first.
    var loadedObjects: [LoadedObject] { objects }

    /// A resolver over `objects` (the executable first) with `references` as absolute addresses.
    init(objects: [LoadedObject], executablePath: String?, references: [String: UInt64], cache: ObjectCache) {
        let main = objects.filter { $0.path == executablePath }
        self.objects = main + objects.filter { $0.path != executablePath }
        self.references = references
        self.cache = cache
        exportTables = Array(repeating: nil, count: objects.count)
    }

    /// Reads from the process what binding `symbols` needs beyond symbol tables: the implementation
    /// it bound for each GNU indirect function, and the TLS layout of each thread-local's object
    /// (`target` for a thread-local reached through `refs`, whose offset is then its TLS offset).
    /// Nothing of the process runs; unknowable bindings are recorded in `problems`.
    mutating func readProcessBindings(for symbols: [RequiredSymbol], target: LoadedObject, memory: borrowing ProcessMemory) {
        for symbol in symbols {
            var result: Result<SymbolBinding, SymbolProblem>?
            let found = references[symbol.name] == nil ? definition(of: symbol) : nil
            if symbol.isThreadLocal {
                if let address = references[symbol.name] {
                    result = threadLocal(symbol, offset: address &- target.loadBias, in: target, memory: memory)
                } else if let found, found.symbol.kind == .tls {
                    result = threadLocal(symbol, offset: found.symbol.value, in: found.object, memory: memory)
                }
            } else if let found, found.symbol.kind == .gnuIndirectFunction {
                result = IndirectFunctionBindings.implementation(of: symbol, definition: found.symbol, in: found.object,
                                                                 objects: objects, cache: cache, memory: memory)
                    .map(SymbolBinding.address)
            }
            switch result {
            case let .success(binding)?: processBindings[symbol] = binding
            case let .failure(problem)?: problems[symbol.name] = problem.text
            case nil: continue
            }
        }
    }

    /// The binding of `symbol` in the process, or nil (with the reason in `problems` when the
    /// symbol was found but is unusable).
    mutating func resolve(_ symbol: RequiredSymbol) -> SymbolBinding? {
        if let known = processBindings[symbol] { return known }
        if problems[symbol.name] != nil { return nil }
        let found = references[symbol.name] == nil ? definition(of: symbol) : nil
        if symbol.isThreadLocal {
            if let found, found.symbol.kind != .tls {
                problems[symbol.name] = "\(symbol.name) in \(found.object.path) is not a thread-local variable, but the patch object declares it __thread"
            } else if references[symbol.name] != nil || found != nil {
                problems[symbol.name] = "the thread-local \(symbol.name) was not located in the process"
            }
            return nil
        }
        if let address = references[symbol.name] { return .address(address) }
        guard let found else { return nil }
        switch found.symbol.kind {
        case .gnuIndirectFunction:
            problems[symbol.name] = "\(symbol) in \(found.object.path) is a GNU indirect function (IFUNC) whose implementation was not read from the process"
            return nil
        case .tls:
            problems[symbol.name] = "\(symbol.name) in \(found.object.path) is a thread-local variable; declare it `extern __thread` in the patch object"
            return nil
        default:
            return .address(found.object.loadBias &+ found.symbol.value)
        }
    }

    /// The first loaded object exporting `symbol` and its definition there: the version asked
    /// for (else an unversioned one), or for an unversioned request the default version.
    private mutating func definition(of symbol: RequiredSymbol) -> (object: LoadedObject, symbol: ELFSymbol)? {
        if let known = definitions[symbol] { return known }
        let found = firstDefinition(of: symbol)
        definitions[symbol] = .some(found)
        return found
    }

    private mutating func firstDefinition(of symbol: RequiredSymbol) -> (object: LoadedObject, symbol: ELFSymbol)? {
        for (index, object) in objects.enumerated() {
            if exportTables[index] == nil { exportTables[index] = .some(try? cache.exports(of: object)) }
            guard let table = exportTables[index] ?? nil, let candidates = table[symbol.name] else { continue }
            let chosen: ELFSymbol?
            if let version = symbol.version {
                chosen = candidates.first { $0.version == version } ?? candidates.first { $0.version == nil }
            } else {
                chosen = candidates.first { !$0.isHiddenVersion } ?? candidates.first
            }
            if let chosen { return (object, chosen) }
        }
        return nil
    }

    /// The binding of thread-local `symbol`, `offset` bytes into the TLS block of `object`.
    private func threadLocal(_ symbol: RequiredSymbol, offset: UInt64, in object: LoadedObject,
                             memory: borrowing ProcessMemory) -> Result<SymbolBinding, SymbolProblem> {
        ThreadLocalLayout.block(of: object, objects: objects, cache: cache, memory: memory).map { block in
            SymbolBinding.threadLocal(ThreadLocalBinding(moduleID: block.moduleID, offset: offset,
                                            staticBlockOffset: block.staticBlockOffset, object: object.path))
        }.mapError { SymbolProblem(text: "\(symbol.name): \($0.text)") }
    }
}
