import Artifact

// The contract between the two halves of `hotpatch-pack build`: the build driver (copies the
// source, applies the diffs, runs the publisher's build twice through the compiler wrapper, finds
// each target) hands one `TargetBuilds` per `--target` to the generator (compares the builds
// function by function and writes the patch object), which answers with a `GeneratedPatch`.

/// One build of the source tree (as released, or with the diffs applied).
package struct SourceBuild: Sendable {
    /// The root of the copy the build ran in.
    package var root: String
    /// Every relocatable object the compiler wrapper saw the build produce (absolute paths,
    /// compiled with per-function and per-datum sections), with the source file each came from.
    package var compiledObjects: [CompiledObject]

    /// A build rooted at `root` that produced `compiledObjects`.
    package init(root: String, compiledObjects: [CompiledObject]) {
        self.root = root
        self.compiledObjects = compiledObjects
    }
}

/// One compiler run that produced a relocatable object.
package struct CompiledObject: Hashable, Sendable {
    /// The `.o` written, absolute.
    package var objectPath: String
    /// The source file compiled, absolute (as the compiler was given it, resolved against its directory).
    package var sourcePath: String
    /// The object's path relative to its build's root: the key that pairs the two builds' objects.
    package var relativePath: String

    /// A compiled object.
    package init(objectPath: String, sourcePath: String, relativePath: String) {
        self.objectPath = objectPath
        self.sourcePath = sourcePath
        self.relativePath = relativePath
    }
}

/// What the generator gets for one `--target`.
package struct TargetBuilds: Sendable {
    /// The released object as hosts run it (offsets, original bytes and build-id come from it).
    package var releasedPath: String
    /// Its debug file, when the released object is stripped (`--debug-file`).
    package var debugFilePath: String?
    /// The target as the unpatched build linked it, and that build.
    package var originalObjectPath: String
    package var original: SourceBuild
    /// The target as the patched build linked it, and that build.
    package var patchedObjectPath: String
    package var patched: SourceBuild
    /// Where the generator may write (the patch object, intermediate files).
    package var workDirectory: String

    /// The inputs for one target.
    package init(releasedPath: String, debugFilePath: String?, originalObjectPath: String, original: SourceBuild,
                 patchedObjectPath: String, patched: SourceBuild, workDirectory: String) {
        self.releasedPath = releasedPath
        self.debugFilePath = debugFilePath
        self.originalObjectPath = originalObjectPath
        self.original = original
        self.patchedObjectPath = patchedObjectPath
        self.patched = patched
        self.workDirectory = workDirectory
    }
}

/// What the generator made for one target: the inputs of an ordinary hotpatch target group
/// (`--patch`, `--replace`, `--ref`), plus what the report says about it.
package struct GeneratedPatch: Sendable {
    /// The patch object written (a shared object, like one a publisher links by hand).
    package var patchObjectPath: String
    /// Released function symbol → the patch object's replacement for it.
    package var replacements: [(symbol: String, replacement: String)]
    /// Non-exported target symbols the patch object reaches, by offset in the released object.
    package var references: [TargetSymbolReference]
    /// Function by function: what changed and what the generator did about it.
    package var changes: [GeneratedChange]
    /// What the publisher should know that is neither a change nor a refusal (a build without
    /// DWARF, so inlining into unchanged callers could not be looked up).
    package var notes: [String]

    /// A generated patch.
    package init(patchObjectPath: String, replacements: [(symbol: String, replacement: String)],
                 references: [TargetSymbolReference], changes: [GeneratedChange], notes: [String] = []) {
        self.patchObjectPath = patchObjectPath
        self.replacements = replacements
        self.references = references
        self.changes = changes
        self.notes = notes
    }
}

/// One line of the report.
package struct GeneratedChange: Sendable, Codable, Hashable {
    /// What happened to a symbol between the builds.
    package enum Kind: String, Sendable, Codable {
        /// Its code changed: it is replaced.
        case changedFunction = "changed-function"
        /// It is new: it lives in the patch object only.
        case newFunction = "new-function"
        /// It is unchanged, but a changed function is inlined into it: it is replaced too.
        case inlinedCaller = "inlined-caller"
        /// It cannot be hotpatched; `reason` says why, and the whole generation is refused.
        case refused
    }
    /// The symbol as the symbol table names it.
    package var symbol: String
    /// The object (file name of the target) it belongs to.
    package var object: String
    package var kind: Kind
    /// Why, in words a publisher can act on (for `refused`, also what to do).
    package var reason: String

    /// A report line.
    package init(symbol: String, object: String, kind: Kind, reason: String) {
        self.symbol = symbol
        self.object = object
        self.kind = kind
        self.reason = reason
    }
}
