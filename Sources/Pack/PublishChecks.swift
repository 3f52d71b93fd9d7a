import Artifact

/// The checks `hotpatch-pack hotpatch` and `publish` run on a hotpatch target before it can be
/// signed, so that nothing is published that the agent would refuse in every process (or that
/// would break every process). What `PatchObject(path:)` and `RedirectionPlanner` already refuse
/// (relocations, sections, patch-side TLS, text relocations, IFUNC targets, short functions) is
/// not repeated here: the caller has built both before calling.
enum PublishChecks {
    /// What a target that passed the checks is published with.
    struct Passed {
        /// Lines for stderr.
        var warnings: [String]
        /// The target's redirections, each marked `nearOnly` where the entry check requires it
        /// (a mark already there is kept).
        var redirections: [FunctionRedirection]
    }

    /// Checks the patch object's undefined symbols against what the target provides (its `--ref`s,
    /// its exports, its `DT_NEEDED` closure on this machine, the `providers`), and every redirected
    /// function's entry with the disassembler. Returns what to publish; throws the refusal.
    static func check(target: ELFFile, debugFile: ELFFile?, patchObject: PatchObject, plan: PlannedTarget,
                      providers: [String]) throws(PackError) -> Passed {
        try checkSymbols(target: target, patchObject: patchObject, references: plan.references.map(\.symbol),
                         providerPaths: providers)
        return try checkEntries(target: target, debugFile: debugFile, redirections: plan.redirections)
    }

    /// Refuses a patch object with a non-weak undefined symbol that nothing provides, or a
    /// thread-local one bound to an ordinary symbol (or the other way round).
    static func checkSymbols(target: ELFFile, patchObject: PatchObject, references: [String],
                             providerPaths: [String]) throws(PackError) {
        let patchPath = patchObject.elf.path
        let closure = DependencyClosure.find(for: target, cache: LibraryCache.load())
        let symbols: SymbolProviders
        let patchKinds: [String: ELFSymbolKind]
        do {
            var providers = [try SymbolProviders.provider(target, label: "the target \(target.path)")]
            for object in closure.objects {
                providers.append(try SymbolProviders.provider(object.elf, label: "\(object.name) (\(object.path))"))
            }
            for path in providerPaths {
                let elf: ELFFile
                do { elf = try ELFFile.load(path: path) } catch { throw PackError("--provider \(path): \(error)") }
                providers.append(try SymbolProviders.provider(elf, label: "--provider \(path)"))
            }
            symbols = SymbolProviders(providers: providers)
            patchKinds = Dictionary(try patchObject.elf.dynamicSymbols().filter { !$0.isDefined }.map { ($0.name, $0.kind) },
                                    uniquingKeysWith: { first, _ in first })
        } catch let error as PackError {
            throw error
        } catch {
            throw PackError.wrapping(error, while: "read the symbols that patch object \(patchPath) can bind to")
        }

        let referenced = Set(references)
        var unresolved: [String] = []
        for need in patchObject.requiredSymbols where !referenced.contains(need.name) {
            guard let (provider, symbol) = symbols.resolve(need) else {
                if need.isWeak { continue }
                let elsewhere = symbols.definedVersions(of: need.name)
                unresolved.append(elsewhere.isEmpty ? "\(need)" : "\(need) (defined only as \(elsewhere.joined(separator: ", ")))")
                continue
            }
            let wantsThreadLocal = patchKinds[need.name] == .tls
            if wantsThreadLocal != (symbol.kind == .tls) {
                throw PackError("Refusing patch object \(patchPath): it uses \(need) as \(wantsThreadLocal ? "a thread-local" : "an ordinary") "
                                + "symbol, but \(provider.label) defines it as \(symbol.kind == .tls ? "a thread-local (STT_TLS)" : "an ordinary") one; "
                                + "rebuild the patch object against the target's own headers")
            }
        }
        guard unresolved.isEmpty else {
            let searched = ["the target \(target.path)"] + closure.objects.map { "\($0.name) (\($0.path))" } + providerPaths.map { "--provider \($0)" }
            let missing = closure.missing.isEmpty ? ""
                : "; not found on this machine: " + closure.missing.map { "\($0.name) (needed by \($0.neededBy))" }.joined(separator: ", ")
            throw PackError("Refusing patch object \(patchPath): undefined symbol\(unresolved.count == 1 ? "" : "s") "
                            + "\(unresolved.joined(separator: ", ")) cannot be resolved in the target process: no object the target "
                            + "depends on defines \(unresolved.count == 1 ? "it" : "them") (searched \(searched.joined(separator: ", "))\(missing)), "
                            + "so the agent would refuse it in every process. Name the object that defines it with --provider ELF, "
                            + "or a non-exported symbol of the target with --ref")
        }
    }

    /// Disassembles each redirected function (and its cold part) and checks its entry (`EntrySafety`).
    static func checkEntries(target: ELFFile, debugFile: ELFFile?, redirections: [FunctionRedirection]) throws(PackError) -> Passed {
        let disassembler = try Disassembler()
        let symbols: [ELFSymbol]
        do { symbols = try (debugFile?.symbols() ?? []) + target.symbols() + target.dynamicSymbols() } catch {
            throw PackError.wrapping(error, while: "read the symbol tables of \(target.path)")
        }
        var passed = Passed(warnings: [], redirections: [])
        for var redirection in redirections {
            let function: EntrySafety.Code
            var coldParts: [EntrySafety.Code] = []
            do {
                function = EntrySafety.Code(name: redirection.symbol, address: redirection.offset,
                                            bytes: try code(of: target, at: redirection.offset, size: redirection.size))
                var seen: Set<UInt64> = []
                for symbol in symbols where isColdPart(symbol.name, of: redirection.symbol) && symbol.isDefined && symbol.size > 0
                    && seen.insert(symbol.value).inserted {
                    coldParts.append(EntrySafety.Code(name: symbol.name, address: symbol.value,
                                                      bytes: try code(of: target, at: symbol.value, size: symbol.size)))
                }
            } catch {
                throw PackError.wrapping(error, while: "read the code of \(redirection.symbol) from \(target.path)")
            }
            let findings = try EntrySafety.check(redirection, function: function, coldParts: coldParts, symbols: symbols,
                                                 targetPath: target.path, disassembler: disassembler)
            passed.warnings += findings.warnings
            redirection.nearOnly = redirection.nearOnly || findings.nearOnly
            passed.redirections.append(redirection)
        }
        return passed
    }

    /// The `size` bytes at `address` of `target`.
    private static func code(of target: ELFFile, at address: UInt64, size: UInt64) throws -> [UInt8] {
        guard let count = Int(exactly: size) else { throw PackError("\(size) bytes at \(hex(address)) is too large") }
        return try target.bytes(atVirtualAddress: address, count: count)
    }

    /// Whether `name` is GCC's cold part of `function`: `FUNCTION.cold` or `FUNCTION.cold.N`.
    static func isColdPart(_ name: String, of function: String) -> Bool {
        guard name.hasPrefix(function + ".cold") else { return false }
        let rest = name.dropFirst(function.count + ".cold".count)
        return rest.isEmpty || (rest.first == "." && rest.count > 1 && rest.dropFirst().allSatisfy { $0.isASCII && $0.isNumber })
    }
}
