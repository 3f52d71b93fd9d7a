extension ChannelIndex {
    /// One kernel live patch module of a hotpatch release, for one exact kernel build (see
    /// docs/CHANNEL.md, "Kernel live patches").
    public struct KernelModule: Equatable, Sendable {
        /// The kernel release (`uname -r`) the module was built for.
        public var release: String
        /// The GNU build-id of that kernel (`/sys/kernel/notes`); the agent matches on it.
        public var buildID: BuildID
        /// The module's name, as its folder under `/sys/kernel/livepatch` is named.
        public var livepatch: String
        /// The `.ko` file in the channel.
        public var module: FileReference

        /// Describes one kernel entry.
        public init(release: String, buildID: BuildID, livepatch: String, module: FileReference) {
            self.release = release
            self.buildID = buildID
            self.livepatch = livepatch
            self.module = module
        }

        /// The entry as the index stores it.
        var jsonValue: JSONValue {
            .object([("release", .string(release)), ("build_id", .string(buildID.description)),
                     ("livepatch", .string(livepatch)), ("module", .object(module.jsonFields))])
        }
    }

    /// The optional `kernel` array of the hotpatch release `reader` reads. Two entries for one
    /// kernel build in one release are refused: the agent could not tell which one to load.
    static func kernelModules(_ reader: Reader) throws(ChannelRefusal) -> [KernelModule] {
        let file = reader.file
        var seen: [BuildID: Int] = [:]
        return try (reader.optionalArray("kernel") ?? []).enumerated().map { (index, value) throws(ChannelRefusal) in
            let entry = try Reader(value, at: "\(reader.name("kernel"))[\(index)]", file: file,
                                   allowed: ["release", "build_id", "livepatch", "module"])
            let release = try entry.string("release")
            if let problem = KernelNames.problemWithRelease(release) {
                throw .invalidValue(path: file, field: entry.name("release"), reason: "'\(release)' \(problem)")
            }
            let buildIDText = try entry.string("build_id")
            guard let buildID = BuildID(hex: buildIDText) else {
                throw .invalidValue(path: file, field: entry.name("build_id"), reason: "'\(buildIDText)' is not hex")
            }
            if let first = seen.updateValue(index, forKey: buildID) {
                throw .invalidValue(path: file, field: entry.name("build_id"),
                                    reason: "\(buildID) is also the kernel of \(reader.name("kernel"))[\(first)]; give one module per kernel build in a release")
            }
            let name = try entry.string("livepatch")
            if let problem = KernelNames.problemWithModuleName(name) {
                throw .invalidValue(path: file, field: entry.name("livepatch"), reason: "'\(name)' \(problem)")
            }
            let module = try Reader(try entry.value("module"), at: entry.name("module"), file: file,
                                    allowed: ["path", "sha256", "length"])
            return KernelModule(release: release, buildID: buildID, livepatch: name, module: try fileReference(module))
        }
    }

    /// Refuses two different modules with one name for one kernel build in one baseline: the
    /// kernel cannot load a module whose name is loaded already, and level N+1 is loaded while
    /// level N still is (atomic replace), so every level's module needs a name of its own. The
    /// same module (same content) named again by a later level is allowed: nothing changes then.
    func checkKernelModuleNames(path: String) throws(ChannelRefusal) {
        struct Key: Hashable { var baseline: String; var buildID: BuildID; var name: String }
        var first: [Key: (release: String, sha256: String)] = [:]
        for (releaseIndex, release) in releases.enumerated() {
            guard case let .hotpatch(id, baseline, _, _, _, _, kernel, _) = release else { continue }
            for (index, entry) in kernel.enumerated() {
                let key = Key(baseline: baseline, buildID: entry.buildID, name: entry.livepatch)
                if let earlier = first[key] {
                    guard earlier.sha256 == entry.module.sha256 else {
                        throw .invalidValue(path: path, field: "releases[\(releaseIndex)].kernel[\(index)].livepatch",
                                            reason: "'\(entry.livepatch)' is also the name of a different module for kernel \(entry.buildID) in release '\(earlier.release)'; the kernel loads a level's module while the previous level's is still loaded, so each level's module needs its own name")
                    }
                } else {
                    first[key] = (id, entry.module.sha256)
                }
            }
        }
    }
}
