import Foundation
import Glibc
import LinuxSystem

/// The work directory of one `hotpatch-pack build-deb`: the source package unpacked, the shipped
/// packages and their files, the reference build (the package built as Debian builds it, for the
/// debug files), and the generator's work directory (`generate/`: the builds through the compiler
/// wrapper, as `hotpatch-pack build` lays them out). With `--work-dir` it is kept and reused: a
/// manifest records, per part, the inputs it was made from, and a part whose inputs are the same
/// is not made again.
package struct DebianWorkDirectory: Sendable {
    /// The parts, in the order they are made; a part's key covers everything it depends on.
    package enum Part: String, Codable, Sendable, CaseIterable {
        case source, shipped, reference, original, patched
    }

    /// What the manifest records.
    package struct Manifest: Codable, Sendable, Equatable {
        /// The manifest's own format.
        package var format = 1
        /// Part → the key of the inputs it was made from; a part is listed only once made.
        package var parts: [String: String] = [:]
    }

    /// The manifest's file name.
    package static let manifestName = "build-deb-manifest.json"

    /// Its absolute path, symbolic links resolved.
    package let root: String
    /// Whether it stays after the command (`--work-dir`).
    package let isKept: Bool
    /// What was made before (empty for a new directory).
    package private(set) var manifest: Manifest

    /// Where `apt-get source` downloads, and `dpkg-source -x` unpacks.
    package var sourceFolder: String { root + "/source" }
    /// The downloaded shipped packages: a directory of their own (a package build writes its
    /// `.deb`s next to the source tree, under the same names).
    package var shippedPackages: String { root + "/shipped-debs" }
    /// The shipped packages' files, one folder per package.
    package func shippedFiles(_ package: String) -> String { root + "/shipped/" + package }
    /// The reference build: a copy of the source built without the compiler wrapper.
    package var reference: String { root + "/reference" }
    /// The reference build's output.
    package var referenceLog: String { root + "/reference-build.log" }
    /// The generator's work directory (`original/`, `patched/`, `build/`, `targets/`).
    package var generate: WorkDirectory { WorkDirectory(root: root + "/generate", isKept: true) }

    /// Opens `kept` (`--work-dir`: created when missing; an existing one must be empty or hold a
    /// manifest), or creates a temporary directory.
    package static func open(kept: String?) throws(PackError) -> DebianWorkDirectory {
        guard let kept else {
            let temporary = try WorkDirectory.create(kept: nil, source: "/nonexistent")
            let work = DebianWorkDirectory(root: temporary.root, isKept: false, manifest: Manifest())
            try work.makeFolders()
            return work
        }
        if (try? Files.linkStatus(kept)) == nil {
            do throws(SystemError) { try Files.makeDirectories(kept, mode: 0o755) } catch {
                throw PackError("Failed to create --work-dir \(kept): \(error)")
            }
        }
        let root: String
        do throws(SystemError) { root = try Files.realPath(kept) } catch { throw PackError("--work-dir \(kept): \(error)") }
        guard let info = try? Files.status(root), info.st_mode & S_IFMT == S_IFDIR else {
            throw PackError("--work-dir \(kept) is not a directory")
        }
        let manifestPath = root + "/" + manifestName
        var manifest = Manifest()
        if let bytes = try? Files.readIfPresent(manifestPath, limit: 1 << 20) {
            guard let read = try? JSONDecoder().decode(Manifest.self, from: Data(bytes)), read.format == Manifest().format else {
                throw PackError("--work-dir \(kept): its \(manifestName) is not one this hotpatch-pack wrote; remove the directory, or name another")
            }
            manifest = read
        } else if (try? Files.list(root))?.isEmpty != true {
            throw PackError("--work-dir \(kept) is neither empty nor a build-deb work directory (it has no \(manifestName)); name a new or empty directory")
        }
        let work = DebianWorkDirectory(root: root, isKept: true, manifest: manifest)
        try work.makeFolders()
        return work
    }

    private func makeFolders() throws(PackError) {
        do throws(SystemError) {
            for folder in [sourceFolder, shippedPackages, root + "/shipped", generate.root] {
                try Files.makeDirectories(folder, mode: 0o755)
            }
        } catch {
            throw PackError("Failed to lay out the work directory \(root): \(error)")
        }
        try save()
    }

    /// Whether `part` was made from inputs with this `key`.
    package func isMade(_ part: Part, key: String) -> Bool { manifest.parts[part.rawValue] == key }

    /// Forgets `part` (before it is made again: a run stopped half-way leaves it unmade).
    package mutating func forget(_ part: Part) throws(PackError) {
        manifest.parts[part.rawValue] = nil
        try save()
    }

    /// Records that `part` is made from inputs with this `key`.
    package mutating func record(_ part: Part, key: String) throws(PackError) {
        manifest.parts[part.rawValue] = key
        try save()
    }

    private func save() throws(PackError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do throws(SystemError) {
            let data = (try? encoder.encode(manifest)) ?? Data("{}".utf8)
            try Files.writeAtomically(root + "/" + Self.manifestName, bytes: Array(data) + [0x0a], mode: 0o644)
        } catch {
            throw PackError("Failed to write the work directory's manifest in \(root): \(error)")
        }
    }

    /// Removes `path` and everything under it, if present.
    package static func clear(_ path: String) throws(PackError) {
        guard (try? Files.linkStatus(path)) != nil else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw PackError("Failed to remove \(path) from the work directory: \(error)")
        }
    }

    /// Removes the work directory unless it is kept.
    package func remove() {
        if !isKept { try? FileManager.default.removeItem(atPath: root) }
    }
}
