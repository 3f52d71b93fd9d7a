import Artifact
/// Resolves a patch object's undefined symbols the way the process's own dynamic linker would see
/// them: explicit `refs` first (non-exported target symbols by offset), then the main executable,
/// then the other loaded objects in address order.
struct SymbolResolver {
    private let objects: [LoadedObject]
    private let references: [String: UInt64]
    private let cache: ObjectCache
    /// Why the last symbol could not be resolved, when it was found but is unusable.
    private(set) var problems: [String: String] = [:]

    /// A resolver over `objects` (the executable first) with `references` as absolute addresses.
    init(objects: [LoadedObject], executablePath: String?, references: [String: UInt64], cache: ObjectCache) {
        let main = objects.filter { $0.path == executablePath }
        self.objects = main + objects.filter { $0.path != executablePath }
        self.references = references
        self.cache = cache
    }

    /// The runtime address of `symbol`, or nil.
    mutating func resolve(_ symbol: RequiredSymbol) -> UInt64? {
        if let address = references[symbol.name] { return address }
        for object in objects {
            guard let table = try? cache.exports(of: object), let candidates = table[symbol.name] else { continue }
            let chosen: ELFSymbol?
            if let version = symbol.version {
                chosen = candidates.first { $0.version == version } ?? candidates.first { $0.version == nil }
            } else {
                chosen = candidates.first { !$0.isHiddenVersion } ?? candidates.first
            }
            guard let chosen else { continue }
            if case .gnuIndirectFunction = chosen.kind {
                // Resolving an IFUNC means running its resolver inside the target: never done.
                problems[symbol.name] = "\(symbol.name) in \(object.path) is a GNU indirect function (IFUNC), whose resolver would have to run inside the target"
                return nil
            }
            return object.loadBias &+ chosen.value
        }
        return nil
    }
}
