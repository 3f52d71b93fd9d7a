import Architecture
/// The content of a channel's `index.json`, parsed and checked for internal consistency.
/// Pure: it needs neither Crypto nor the file system (see docs/CHANNEL.md for the format).
public struct ChannelIndex: Equatable, Sendable {
    /// The index format the agent reads and `hotpatch-pack` writes.
    public static let currentFormat = 1

    /// Strictly increasing with each publication; the agent refuses a lower one (rollback).
    public var version: Int
    /// When the index stops being valid, RFC 3339 as written in the index.
    public var expires: String
    /// The releases, in publication order.
    public var releases: [Release]

    /// Describes an index.
    public init(version: Int, expires: String, releases: [Release]) {
        self.version = version
        self.expires = expires
        self.releases = releases
    }

    /// `expires` as seconds since the Unix epoch (validated by `parse`).
    public var expiresSeconds: Double { RFC3339.parse(expires) ?? 0 }

    /// A file in the channel, bound by its SHA-256 and length.
    public struct FileReference: Equatable, Sendable {
        /// Relative to the channel directory, normalised.
        public var path: String
        /// Lowercase hex SHA-256 of the file's bytes.
        public var sha256: String
        /// The exact length in bytes.
        public var length: UInt64

        public init(path: String, sha256: String, length: UInt64) {
            self.path = path
            self.sha256 = sha256
            self.length = length
        }
    }

    /// What a baseline or fix installs: a Debian package, or a plain file at an absolute destination.
    /// A hotpatch release may carry Debian packages only (the fixed packages it brings to the disk).
    public struct InstallFile: Equatable, Sendable {
        public enum Kind: Hashable, Sendable {
            /// Installed with dpkg/apt.
            case deb
            /// Installed atomically at `destination` with permission bits `mode`.
            case file(destination: String, mode: UInt32)
        }
        public var kind: Kind
        public var file: FileReference

        public init(kind: Kind, file: FileReference) {
            self.kind = kind
            self.file = file
        }
    }

    /// One object (executable or library) a hotpatch patches.
    public struct Target: Equatable, Sendable {
        public var buildID: BuildID
        public var pathHint: String
        public var patchObject: FileReference
        public var redirections: [FunctionRedirection]
        public var references: [TargetSymbolReference]

        public init(buildID: BuildID, pathHint: String, patchObject: FileReference,
                    redirections: [FunctionRedirection], references: [TargetSymbolReference]) {
            self.buildID = buildID
            self.pathHint = pathHint
            self.patchObject = patchObject
            self.redirections = redirections
            self.references = references
        }
    }

    /// A release of any kind. `id`, `description` and `cves` are common to all.
    public enum Release: Equatable, Sendable {
        /// Process targets and kernel live patch modules (at least one of the two is non-empty), and
        /// the fixed Debian packages the agent installs once the processes are patched (`files`, all
        /// of type deb; empty when the release brings nothing to the disk).
        case hotpatch(id: String, baseline: String, level: Int, description: String, cves: [String], targets: [Target],
                      kernel: [KernelModule], files: [InstallFile] = [])
        case baseline(id: String, planned: Bool, description: String, cves: [String], files: [InstallFile])
        case fix(id: String, baseline: String, description: String, cves: [String], files: [InstallFile])

        public var id: String {
            switch self {
            case let .hotpatch(id, _, _, _, _, _, _, _), let .baseline(id, _, _, _, _), let .fix(id, _, _, _, _): return id
            }
        }

        public var kind: String {
            switch self {
            case .hotpatch: return "hotpatch"
            case .baseline: return "baseline"
            case .fix: return "fix"
            }
        }

        public var releaseDescription: String {
            switch self {
            case let .hotpatch(_, _, _, text, _, _, _, _), let .baseline(_, _, text, _, _), let .fix(_, _, text, _, _): return text
            }
        }

        public var cves: [String] {
            switch self {
            case let .hotpatch(_, _, _, _, cves, _, _, _), let .baseline(_, _, _, cves, _), let .fix(_, _, _, cves, _): return cves
            }
        }

        /// Every channel file the release refers to.
        public var fileReferences: [FileReference] {
            switch self {
            case let .hotpatch(_, _, _, _, _, _, _, files): return loadedFileReferences + files.map(\.file)
            case let .baseline(_, _, _, _, files), let .fix(_, _, _, _, files): return files.map(\.file)
            }
        }

        /// The files the agent loads rather than installs: a hotpatch's patch objects and kernel
        /// modules (empty for a baseline or fix).
        public var loadedFileReferences: [FileReference] {
            guard case let .hotpatch(_, _, _, _, _, targets, kernel, _) = self else { return [] }
            return targets.map(\.patchObject) + kernel.map(\.module)
        }

        /// What the release installs: a baseline's or fix's files, a hotpatch's fixed packages.
        public var installFiles: [InstallFile] {
            switch self {
            case let .hotpatch(_, _, _, _, _, _, _, files), let .baseline(_, _, _, _, files), let .fix(_, _, _, _, files): return files
            }
        }
    }

    // MARK: Parsing

    /// Parses and checks `bytes` (the whole `index.json`); `path` names the file in refusals.
    /// Checks everything that does not need the file system, the clock or the caller's state:
    /// syntax, types, unknown fields and kinds, values, ids, baselines, levels, path shapes.
    public static func parse(_ bytes: [UInt8], path: String) throws(ChannelRefusal) -> ChannelIndex {
        let root: JSONValue
        do {
            root = try ChannelJSON.parse(bytes)
        } catch {
            throw .malformedIndex(path: path, reason: error.description)
        }
        let reader = try Reader(root, at: "", file: path, allowed: ["format", "version", "expires", "releases"])
        let format = try reader.int("format")
        guard format == currentFormat else { throw .unsupportedFormat(path: path, format: format) }
        let version = try reader.int("version")
        guard version >= 0 else { throw .invalidValue(path: path, field: "version", reason: "must not be negative") }
        let expires = try reader.string("expires")
        guard RFC3339.parse(expires) != nil else {
            throw .invalidValue(path: path, field: "expires", reason: "'\(expires)' is not an RFC 3339 date-time")
        }
        let releases = try reader.array("releases").enumerated().map { (index, value) throws(ChannelRefusal) in
            try release(value, at: "releases[\(index)]", file: path)
        }
        let index = ChannelIndex(version: version, expires: expires, releases: releases)
        try index.checkConsistency(path: path)
        return index
    }

    private static func release(_ value: JSONValue, at field: String, file: String) throws(ChannelRefusal) -> Release {
        let common = ["id", "kind", "description", "cves"]
        guard case let .object(fields) = value else {
            throw .wrongFieldType(path: file, field: field, expected: "an object")
        }
        guard let kindValue = fields.first(where: { $0.key == "kind" })?.value else {
            throw .missingField(path: file, field: "\(field).kind")
        }
        guard case let .string(kind) = kindValue else {
            throw .wrongFieldType(path: file, field: "\(field).kind", expected: "a string")
        }
        switch kind {
        case "hotpatch":
            let reader = try Reader(value, at: field, file: file, allowed: common + ["baseline", "level", "targets", "kernel", "files"])
            let targets = try reader.array("targets").enumerated().map { (index, value) throws(ChannelRefusal) in
                try target(value, at: "\(field).targets[\(index)]", file: file)
            }
            let kernel = try kernelModules(reader)
            guard !targets.isEmpty || !kernel.isEmpty else {
                throw .invalidValue(path: file, field: "\(field).targets", reason: "is empty, and the release has no kernel entries")
            }
            let level = try reader.int("level")
            guard level >= 1 else { throw .invalidValue(path: file, field: "\(field).level", reason: "must be 1 or more") }
            let id = try reader.id()
            let packages = try reader.has("files") ? installFiles(reader, at: field, file: file) : []
            if let index = packages.firstIndex(where: { $0.kind != .deb }) {
                throw .invalidValue(path: file, field: "\(field).files[\(index)].type",
                                    reason: "hotpatch release \(id) carries a plain file: a hotpatch carries only Debian packages (type deb), installed once its processes are patched; ship plain files in a baseline or fix")
            }
            return .hotpatch(id: id, baseline: try reader.id("baseline"), level: level,
                             description: try reader.optionalString("description") ?? "",
                             cves: try reader.cves(), targets: targets, kernel: kernel, files: packages)
        case "baseline":
            let reader = try Reader(value, at: field, file: file, allowed: common + ["planned", "files"])
            return .baseline(id: try reader.id(), planned: try reader.bool("planned"),
                             description: try reader.optionalString("description") ?? "",
                             cves: try reader.cves(), files: try installFiles(reader, at: field, file: file))
        case "fix":
            let reader = try Reader(value, at: field, file: file, allowed: common + ["baseline", "files"])
            return .fix(id: try reader.id(), baseline: try reader.id("baseline"),
                        description: try reader.optionalString("description") ?? "",
                        cves: try reader.cves(), files: try installFiles(reader, at: field, file: file))
        default:
            throw .unknownKind(path: file, field: "\(field).kind", kind: kind)
        }
    }

    /// The `files` of a baseline, fix or hotpatch. Two plain files with one destination are refused: the
    /// second would overwrite the first, and a rollback could not know which content to restore.
    private static func installFiles(_ reader: Reader, at field: String, file: String) throws(ChannelRefusal) -> [InstallFile] {
        var destinations: [String: Int] = [:]
        return try reader.array("files").enumerated().map { (index, value) throws(ChannelRefusal) in
            let at = "\(field).files[\(index)]"
            let entry = try Reader(value, at: at, file: file, allowed: ["type", "path", "sha256", "length", "destination", "mode"])
            let type = try entry.string("type")
            let reference = try fileReference(entry)
            switch type {
            case "deb":
                for forbidden in ["destination", "mode"] where entry.has(forbidden) {
                    throw .unknownField(path: file, field: "\(at).\(forbidden) (not used by type deb)")
                }
                return InstallFile(kind: .deb, file: reference)
            case "file":
                let destination = try entry.string("destination")
                if let problem = ChannelPath.problemWithDestination(destination) {
                    throw .invalidDestination(path: file, destination: destination, reason: problem)
                }
                if let first = destinations.updateValue(index, forKey: destination) {
                    throw .invalidDestination(path: file, destination: destination,
                                              reason: "is the destination of both \(field).files[\(first)] and \(at)")
                }
                let modeText = try entry.string("mode")
                guard modeText.utf8.count == 4, let mode = UInt32(modeText, radix: 8), mode <= 0o7777 else {
                    throw .invalidValue(path: file, field: "\(at).mode", reason: "'\(modeText)' is not four octal digits")
                }
                return InstallFile(kind: .file(destination: destination, mode: mode), file: reference)
            default:
                throw .unknownKind(path: file, field: "\(at).type", kind: type)
            }
        }
    }

    static func fileReference(_ reader: Reader) throws(ChannelRefusal) -> FileReference {
        let path = try reader.string("path")
        if let problem = ChannelPath.problemWithRelative(path) {
            throw .unsafePath(path: reader.file, entry: path, reason: problem)
        }
        return FileReference(path: path, sha256: try reader.sha256("sha256"), length: try reader.uint64("length"))
    }

    private static func target(_ value: JSONValue, at field: String, file: String) throws(ChannelRefusal) -> Target {
        let reader = try Reader(value, at: field, file: file,
                                allowed: ["build_id", "path_hint", "patch_object", "redirections", "refs"])
        let buildIDText = try reader.string("build_id")
        guard let buildID = BuildID(hex: buildIDText) else {
            throw .invalidValue(path: file, field: "\(field).build_id", reason: "'\(buildIDText)' is not hex")
        }
        let object = try Reader(try reader.value("patch_object"), at: "\(field).patch_object", file: file,
                                allowed: ["path", "sha256", "length"])
        let redirections = try reader.array("redirections").enumerated().map { (index, value) throws(ChannelRefusal) in
            let entry = try Reader(value, at: "\(field).redirections[\(index)]", file: file,
                                   allowed: ["symbol", "offset", "size", "sha256", "replacement", "padding", "near_only"])
            let size = try entry.uint64("size")
            let offset = try entry.uint64("offset")
            let padding = try entry.optionalUInt64("padding") ?? 0
            let near = UInt64(HostArchitecture.nearJumpLength), hop = UInt64(HostArchitecture.entryHopLength)
            switch padding {
            case 0:
                guard size >= near else {
                    throw .invalidValue(path: file, field: "\(entry.at).size",
                                        reason: "\(size) bytes cannot hold a \(near)-byte jump (and no padding is given for one before the entry)")
                }
            case near:
                guard size >= hop, size < near else {
                    throw .invalidValue(path: file, field: "\(entry.at).size",
                                        reason: "\(size) bytes: padding is for functions of \(hop) to \(near - 1) bytes only")
                }
                guard offset >= padding else {
                    throw .invalidValue(path: file, field: "\(entry.at).padding", reason: "\(padding) bytes before offset \(offset) lie before the object")
                }
            default:
                throw .invalidValue(path: file, field: "\(entry.at).padding", reason: "is \(padding); only 0 or \(near) (the near jump's length) is allowed")
            }
            return FunctionRedirection(symbol: try entry.symbol("symbol"), offset: offset, size: size,
                                       sha256: try entry.sha256("sha256"), replacement: try entry.symbol("replacement"),
                                       padding: padding, nearOnly: try entry.optionalBool("near_only") ?? false)
        }
        guard !redirections.isEmpty else {
            throw .invalidValue(path: file, field: "\(field).redirections", reason: "is empty")
        }
        let references = try (reader.optionalArray("refs") ?? []).enumerated().map { (index, value) throws(ChannelRefusal) in
            let entry = try Reader(value, at: "\(field).refs[\(index)]", file: file, allowed: ["symbol", "offset", "kind"])
            let kindText = try entry.optionalString("kind") ?? TargetSymbolReference.Kind.address.rawValue
            guard let kind = TargetSymbolReference.Kind(rawValue: kindText) else {
                throw .invalidValue(path: file, field: "\(entry.at).kind", reason: "'\(kindText)' is not \"address\" or \"tls\"")
            }
            return TargetSymbolReference(symbol: try entry.symbol("symbol"), offset: try entry.uint64("offset"), kind: kind)
        }
        return Target(buildID: buildID, pathHint: try reader.string("path_hint"), patchObject: try fileReference(object),
                      redirections: redirections, references: references)
    }

    /// Checks rules across releases: unique ids, known baselines, increasing levels.
    private func checkConsistency(path: String) throws(ChannelRefusal) {
        var ids = Set<String>()
        var baselines = Set<String>()
        for release in releases {
            guard ids.insert(release.id).inserted else { throw .duplicateID(path: path, id: release.id) }
            if case let .baseline(id, _, _, _, _) = release { baselines.insert(id) }
        }
        var lastLevel: [String: Int] = [:]
        for release in releases {
            switch release {
            case let .hotpatch(id, baseline, level, _, _, _, _, _):
                guard baselines.contains(baseline) else { throw .unknownBaseline(path: path, release: id, baseline: baseline) }
                if let previous = lastLevel[baseline], level <= previous {
                    throw .levelsNotIncreasing(path: path, release: id, baseline: baseline, level: level, previous: previous)
                }
                lastLevel[baseline] = level
            case let .fix(id, baseline, _, _, _):
                guard baselines.contains(baseline) else { throw .unknownBaseline(path: path, release: id, baseline: baseline) }
            case .baseline:
                break
            }
        }
        try checkKernelModuleNames(path: path)
    }

    // MARK: Printing

    /// The index as `hotpatch-pack` writes it: JSON with a fixed key order and a final newline.
    public func encoded() -> [UInt8] {
        ChannelJSON.print(jsonValue)
    }

    /// The index as a JSON value (also used by `hotpatch-pack list --json`).
    public var jsonValue: JSONValue {
        .object([
            ("format", .number(String(Self.currentFormat))),
            ("version", .number(String(version))),
            ("expires", .string(expires)),
            ("releases", .array(releases.map(\.jsonValue))),
        ])
    }
}

extension ChannelIndex.FileReference {
    var jsonFields: [(key: String, value: JSONValue)] {
        [("path", .string(path)), ("sha256", .string(sha256)), ("length", .number(String(length)))]
    }
}

extension ChannelIndex.Release {
    /// The release as the index stores it.
    public var jsonValue: JSONValue {
        func common(_ id: String, _ kind: String) -> [(key: String, value: JSONValue)] {
            [("id", .string(id)), ("kind", .string(kind))]
        }
        func tail(_ text: String, _ cves: [String]) -> [(key: String, value: JSONValue)] {
            [("description", .string(text)), ("cves", .array(cves.map { .string($0) }))]
        }
        func files(_ files: [ChannelIndex.InstallFile]) -> JSONValue {
            .array(files.map { entry in
                switch entry.kind {
                case .deb:
                    return .object([("type", .string("deb"))] + entry.file.jsonFields)
                case let .file(destination, mode):
                    var octal = String(mode, radix: 8)
                    octal = String(repeating: "0", count: max(0, 4 - octal.count)) + octal
                    return .object([("type", .string("file"))] + entry.file.jsonFields
                                   + [("destination", .string(destination)), ("mode", .string(octal))])
                }
            })
        }
        switch self {
        case let .hotpatch(id, baseline, level, text, cves, targets, kernel, packages):
            let targetValues: [JSONValue] = targets.map { target in
                .object([
                    ("build_id", .string(target.buildID.description)),
                    ("path_hint", .string(target.pathHint)),
                    ("patch_object", .object(target.patchObject.jsonFields)),
                    ("redirections", .array(target.redirections.map { redirection in
                        .object([("symbol", .string(redirection.symbol)),
                                 ("offset", .number(String(redirection.offset))),
                                 ("size", .number(String(redirection.size))),
                                 ("sha256", .string(redirection.sha256)),
                                 ("replacement", .string(redirection.replacement))]
                                + (redirection.padding == 0 ? [] : [("padding", .number(String(redirection.padding)))])
                                + (redirection.nearOnly ? [("near_only", .bool(true))] : []))
                    })),
                    ("refs", .array(target.references.map { reference in
                        // An address reference is written as before the kind existed, so older agents read it.
                        .object([("symbol", .string(reference.symbol)), ("offset", .number(String(reference.offset)))]
                                + (reference.kind == .address ? [] : [("kind", .string(reference.kind.rawValue))]))
                    })),
                ])
            }
            return .object(common(id, "hotpatch") + [("baseline", .string(baseline)), ("level", .number(String(level)))]
                           + tail(text, cves) + [("targets", .array(targetValues))]
                           // Written only when present, so an index without kernel entries stays
                           // readable by agents that predate them.
                           + (kernel.isEmpty ? [] : [("kernel", .array(kernel.map(\.jsonValue)))])
                           // Likewise for the fixed packages: an agent that predates them refuses
                           // the field rather than patch without bringing the disk along.
                           + (packages.isEmpty ? [] : [("files", files(packages))]))
        case let .baseline(id, planned, text, cves, list):
            return .object(common(id, "baseline") + [("planned", .bool(planned))] + tail(text, cves) + [("files", files(list))])
        case let .fix(id, baseline, text, cves, list):
            return .object(common(id, "fix") + [("baseline", .string(baseline))] + tail(text, cves) + [("files", files(list))])
        }
    }
}

/// Typed access to one JSON object of the index, with refusals naming the field's JSON path.
struct Reader {
    let fields: [(key: String, value: JSONValue)]
    let at: String
    let file: String

    /// Wraps `value`, which must be an object whose keys are all in `allowed`.
    init(_ value: JSONValue, at: String, file: String, allowed: [String]) throws(ChannelRefusal) {
        guard case let .object(fields) = value else {
            throw .wrongFieldType(path: file, field: at.isEmpty ? "(document)" : at, expected: "an object")
        }
        self.fields = fields
        self.at = at
        self.file = file
        if let unknown = fields.first(where: { !allowed.contains($0.key) }) {
            throw .unknownField(path: file, field: name(unknown.key))
        }
    }

    func name(_ key: String) -> String { at.isEmpty ? key : "\(at).\(key)" }

    func has(_ key: String) -> Bool { fields.contains { $0.key == key } }

    func value(_ key: String) throws(ChannelRefusal) -> JSONValue {
        guard let value = fields.first(where: { $0.key == key })?.value else {
            throw .missingField(path: file, field: name(key))
        }
        return value
    }

    func string(_ key: String) throws(ChannelRefusal) -> String {
        guard case let .string(text) = try value(key) else {
            throw .wrongFieldType(path: file, field: name(key), expected: "a string")
        }
        return text
    }

    func optionalString(_ key: String) throws(ChannelRefusal) -> String? {
        has(key) ? try string(key) : nil
    }

    func bool(_ key: String) throws(ChannelRefusal) -> Bool {
        guard case let .bool(flag) = try value(key) else {
            throw .wrongFieldType(path: file, field: name(key), expected: "true or false")
        }
        return flag
    }

    func optionalBool(_ key: String) throws(ChannelRefusal) -> Bool? {
        has(key) ? try bool(key) : nil
    }

    func int(_ key: String) throws(ChannelRefusal) -> Int {
        guard case let .number(text) = try value(key), text.utf8.allSatisfy({ $0 == 0x2d || ($0 >= 0x30 && $0 <= 0x39) }) else {
            throw .wrongFieldType(path: file, field: name(key), expected: "an integer")
        }
        guard let number = Int(text) else {
            throw .invalidValue(path: file, field: name(key), reason: "\(text) is out of range")
        }
        return number
    }

    func uint64(_ key: String) throws(ChannelRefusal) -> UInt64 {
        guard case let .number(text) = try value(key), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw .wrongFieldType(path: file, field: name(key), expected: "a non-negative integer")
        }
        guard let number = UInt64(text) else {
            throw .invalidValue(path: file, field: name(key), reason: "\(text) is out of range")
        }
        return number
    }

    func optionalUInt64(_ key: String) throws(ChannelRefusal) -> UInt64? {
        has(key) ? try uint64(key) : nil
    }

    func array(_ key: String) throws(ChannelRefusal) -> [JSONValue] {
        guard case let .array(items) = try value(key) else {
            throw .wrongFieldType(path: file, field: name(key), expected: "an array")
        }
        return items
    }

    func optionalArray(_ key: String) throws(ChannelRefusal) -> [JSONValue]? {
        has(key) ? try array(key) : nil
    }

    /// A release id: 1-128 of `A-Z a-z 0-9 . _ + -`, not starting with `.` (ids name channel folders).
    func id(_ key: String = "id") throws(ChannelRefusal) -> String {
        let text = try string(key)
        if let problem = ChannelIdentifier.problem(text) {
            throw .invalidValue(path: file, field: name(key), reason: "'\(text)' \(problem)")
        }
        return text
    }

    func symbol(_ key: String) throws(ChannelRefusal) -> String {
        let text = try string(key)
        guard !text.isEmpty, text.utf8.count <= 1024, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw .invalidValue(path: file, field: name(key), reason: "'\(text)' is not a symbol name")
        }
        return text
    }

    func sha256(_ key: String) throws(ChannelRefusal) -> String {
        let text = try string(key)
        guard text.utf8.count == 64, text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw .invalidValue(path: file, field: name(key), reason: "'\(text)' is not 64 lowercase hex digits")
        }
        return text
    }

    func cves() throws(ChannelRefusal) -> [String] {
        try (optionalArray("cves") ?? []).enumerated().map { (index, value) throws(ChannelRefusal) in
            guard case let .string(text) = value else {
                throw .wrongFieldType(path: file, field: "\(name("cves"))[\(index)]", expected: "a string")
            }
            guard !text.isEmpty, text.utf8.count <= 64, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw .invalidValue(path: file, field: "\(name("cves"))[\(index)]", reason: "'\(text)' is not an identifier")
            }
            return text
        }
    }
}

/// The rule for release ids, shared by the index parser and `hotpatch-pack`.
public enum ChannelIdentifier {
    /// Why `text` is not a valid release id, or nil if it is one.
    public static func problem(_ text: String) -> String? {
        if text.isEmpty { return "is empty" }
        if text.utf8.count > 128 { return "is longer than 128 characters" }
        if text.hasPrefix(".") { return "starts with '.'" }
        let allowed = text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
        }
        return allowed ? nil : "may only hold letters, digits, '.', '_', '+' and '-'"
    }
}
