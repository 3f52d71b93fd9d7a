import Artifact

/// Where a patch object's undefined symbols can come from in a process that maps the target: the
/// target's `--ref`s, the target's own exports, the objects it depends on, and objects the
/// publisher names with `--provider`. A symbol is looked up the way the agent's resolver does:
/// the first object with a definition of that name and version (or an unversioned one) wins.
struct SymbolProviders {
    /// One object's defined global and weak dynamic symbols, by name.
    struct Provider {
        /// How messages name it ("the target ./app", "libc.so.6 (/lib/x86_64-linux-gnu/libc.so.6)").
        var label: String
        /// Its exports.
        var exports: [String: [ELFSymbol]]
    }

    /// The providers, in lookup order.
    var providers: [Provider]

    /// The exports of `elf`, as the agent's resolver reads them (`.dynsym`, defined, global or weak).
    static func provider(_ elf: ELFFile, label: String) throws -> Provider {
        var exports: [String: [ELFSymbol]] = [:]
        for symbol in try elf.dynamicSymbols() where symbol.isDefined && (symbol.binding == .global || symbol.binding == .weak) {
            exports[symbol.name, default: []].append(symbol)
        }
        return Provider(label: label, exports: exports)
    }

    /// The definition the agent would bind `need` to, and who provides it; nil when none does.
    func resolve(_ need: RequiredSymbol) -> (provider: Provider, symbol: ELFSymbol)? {
        for provider in providers {
            guard let candidates = provider.exports[need.name] else { continue }
            let chosen = need.version.map { version in
                candidates.first { $0.version == version } ?? candidates.first { $0.version == nil }
            } ?? (candidates.first { !$0.isHiddenVersion } ?? candidates.first)
            if let chosen { return (provider, chosen) }
        }
        return nil
    }

    /// The versions that do define `need.name` somewhere, for a message about a version mismatch.
    func definedVersions(of name: String) -> [String] {
        providers.flatMap { provider in
            (provider.exports[name] ?? []).map { "\($0.version ?? "unversioned") in \(provider.label)" }
        }
    }
}
