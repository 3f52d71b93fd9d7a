import Artifact

/// One object a hotpatch release patches, as given on the command line: `--target ELF` and the
/// options that follow it up to the next `--target`.
struct TargetGroup: Equatable, Sendable {
    /// Its position on the command line, from 1 (for messages).
    var number: Int
    /// The object to patch, as built.
    var target: String
    /// Its separate debug file, if given.
    var debugFile: String?
    /// The patch object.
    var patch: String
    /// `SYMBOL=REPLACEMENT` pairs, split.
    var replacements: [(symbol: String, replacement: String)]
    /// Non-exported target symbols the patch object uses.
    var references: [String]
    /// Where the object usually lives on hosts.
    var pathHint: String?
    /// The target symbols the patch object uses, already located by offset (`hotpatch-pack
    /// build`'s generator does so); when set, `references` is not looked up.
    var resolvedReferences: [TargetSymbolReference]? = nil

    /// `target group N (--target ELF)`, for messages.
    var label: String { "target group \(number) (--target \(target))" }

    static func == (lhs: TargetGroup, rhs: TargetGroup) -> Bool {
        lhs.number == rhs.number && lhs.target == rhs.target && lhs.debugFile == rhs.debugFile && lhs.patch == rhs.patch
            && lhs.replacements.map { "\($0.symbol)=\($0.replacement)" } == rhs.replacements.map { "\($0.symbol)=\($0.replacement)" }
            && lhs.references == rhs.references && lhs.pathHint == rhs.pathHint && lhs.resolvedReferences == rhs.resolvedReferences
    }
}

/// Splits `hotpatch-pack hotpatch`'s arguments into target groups (see `OptionGroups`): each
/// `--target` opens a group; with a single `--target`, every group option belongs to it wherever
/// it stands (the single-target command line of earlier versions).
enum TargetGroups {
    /// The options that belong to a target group.
    static let groupOptions: Set<String> = ["--target", "--debug-file", "--patch", "--replace", "--ref", "--path-hint"]

    /// The groups of `arguments` (the subcommand's own arguments, options with their values as
    /// separate words or as `--option=value`). Throws, naming the group, when an option comes before
    /// the first of several `--target`s, a group has no or two `--patch`, two `--debug-file` or
    /// `--path-hint`, no `--replace`, or a `--replace` that is not `SYMBOL=REPLACEMENT`.
    static func parse(_ arguments: [String]) throws(PackError) -> [TargetGroup] {
        let raw = try OptionGroups(options: groupOptions, starter: "--target", valueName: "ELF", noun: "target").split(arguments)
        guard !raw.isEmpty else { throw PackError("give --target ELF: the object to patch") }
        return try raw.enumerated().map { (offset, options) throws(PackError) in try group(number: offset + 1, options) }
    }

    private static func group(number: Int, _ options: [(option: String, value: String)]) throws(PackError) -> TargetGroup {
        let target = options[0].value
        let label = "target group \(number) (--target \(target))"
        func values(_ option: String) -> [String] { options.filter { $0.option == option }.map(\.value) }
        func single(_ option: String) throws(PackError) -> String? {
            let given = values(option)
            guard given.count <= 1 else { throw PackError("\(label): \(option) is given \(given.count) times; give it once per target") }
            return given.first
        }
        let patches = values("--patch")
        guard patches.count == 1 else {
            throw PackError(patches.isEmpty ? "\(label): give --patch OBJ.so, the patch object for this target"
                                            : "\(label): --patch is given \(patches.count) times; give one patch object per target")
        }
        let specs = values("--replace")
        guard !specs.isEmpty else { throw PackError("\(label): give at least one --replace SYMBOL=REPLACEMENT") }
        var replacements: [(symbol: String, replacement: String)] = []
        for spec in specs {
            let parts = spec.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw PackError("\(label): --replace \(spec): expected SYMBOL=REPLACEMENT")
            }
            replacements.append((String(parts[0]), String(parts[1])))
        }
        let pathHint = try single("--path-hint")
        // Hosts read the hint as a file path: the agent marks that file to see a library loaded
        // later, and a relative path would name whatever lies under the agent's working folder.
        if let pathHint, !pathHint.hasPrefix("/") {
            throw PackError("\(label): --path-hint \(pathHint) is relative; give the absolute path the object has on hosts (e.g. /usr/lib/x86_64-linux-gnu/libz.so.1)")
        }
        return TargetGroup(number: number, target: target, debugFile: try single("--debug-file"), patch: patches[0],
                           replacements: replacements, references: values("--ref"), pathHint: pathHint)
    }
}
