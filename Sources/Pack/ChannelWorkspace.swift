import Artifact
import Foundation
import Glibc
import LinuxSystem

/// The publisher's view of a channel directory: reads and rewrites the (unsigned) index, copies
/// release files in. Every file is written to a temporary name and renamed, with modes 0644/0755
/// (a baseline or fix file: its source's permission bits) whatever the umask, so a channel built
/// here passes the agent's permission check.
struct ChannelWorkspace {
    let directory: String

    var indexPath: String { directory + "/" + ChannelVerifier.indexFileName }
    var signaturePath: String { directory + "/" + ChannelVerifier.signatureFileName }

    /// Reads and checks the index as it is on disk (signed or not).
    func loadIndex() throws -> ChannelIndex {
        guard FileManager.default.fileExists(atPath: indexPath) else {
            throw PackError("\(indexPath) does not exist; run 'hotpatch-pack init --channel \(directory)' first")
        }
        let bytes = try Self.read(indexPath)
        do {
            return try ChannelIndex.parse(bytes, path: indexPath)
        } catch {
            throw PackError(error.description)
        }
    }

    /// Writes `index` (unsigned until `publish`).
    func save(_ index: ChannelIndex) throws {
        try Self.writeAtomically(index.encoded(), to: indexPath, mode: 0o644)
    }

    /// Refuses an id that is malformed or already used.
    func checkNewID(_ id: String, in index: ChannelIndex) throws {
        if let problem = ChannelIdentifier.problem(id) { throw PackError("Release id '\(id)' \(problem)") }
        if index.releases.contains(where: { $0.id == id }) { throw PackError("Release id '\(id)' is already in \(indexPath)") }
    }

    /// Refuses a baseline id the index does not define.
    func checkBaselineExists(_ baseline: String, in index: ChannelIndex) throws {
        let known = index.releases.compactMap { release -> String? in
            if case let .baseline(id, _, _, _, _) = release { return id } else { return nil }
        }
        guard known.contains(baseline) else {
            throw PackError("Baseline '\(baseline)' is not in \(indexPath) (known: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
    }

    /// Copies `source` into the channel at `relative` and returns its reference (hash and length of the copy).
    func addFile(_ source: String, at relative: String) throws -> ChannelIndex.FileReference {
        if let problem = ChannelPath.problemWithRelative(relative) { throw PackError("Channel path '\(relative)' \(problem)") }
        let target = directory + "/" + relative
        if FileManager.default.fileExists(atPath: target) {
            throw PackError("\(target) already exists; a published file is never replaced (use a new release id)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw PackError("\(source) is not a file")
        }
        try Self.makeDirectories(for: relative, under: directory)
        try Self.writeAtomically(try Self.read(source), to: target, mode: 0o644)
        let digest = try ChannelFileDigest.compute(path: target)
        return .init(path: relative, sha256: digest.sha256, length: digest.length)
    }

    /// Parses `--deb` and `--file SRC=DEST` options into install files copied under `folder`.
    /// Every option is checked before anything is written (each source is a readable regular file,
    /// each destination is valid and named once, no two sources share a name, `folder` is new);
    /// the files are then copied into a staging folder that is renamed to `folder` at the end, so a
    /// failure leaves nothing in the channel. A `--file` copy keeps its source's permission bits
    /// (a 0600 file stays 0600), which the index also records; packages are 0644.
    func addInstallFiles(debs: [String], files: [String], folder: String) throws -> [ChannelIndex.InstallFile] {
        struct Planned {
            var source: String
            var name: String
            var kind: ChannelIndex.InstallFile.Kind
            var mode: mode_t
        }
        var planned: [Planned] = []
        var names: [String: String] = [:]
        var destinations: [String: String] = [:]
        func name(of source: String) throws -> String {
            let name = (source as NSString).lastPathComponent
            if let other = names.updateValue(source, forKey: name) {
                throw PackError("Two files are named \(name) (\(other) and \(source)); rename one")
            }
            return name
        }
        for deb in debs {
            _ = try Self.sourceMode(deb, option: "--deb")
            planned.append(Planned(source: deb, name: try name(of: deb), kind: .deb, mode: 0o644))
        }
        for spec in files {
            guard let equals = spec.firstIndex(of: "=") else { throw PackError("--file \(spec): expected SRC=DEST") }
            let source = String(spec[..<equals])
            let destination = String(spec[spec.index(after: equals)...])
            if let problem = ChannelPath.problemWithDestination(destination) {
                throw PackError("--file \(spec): destination '\(destination)' \(problem)")
            }
            if let other = destinations.updateValue(spec, forKey: destination) {
                throw PackError("--file \(spec): destination '\(destination)' is also the destination of --file \(other); a release installs each file once")
            }
            let mode = try Self.sourceMode(source, option: "--file")
            planned.append(Planned(source: source, name: try name(of: source),
                                   kind: .file(destination: destination, mode: UInt32(mode)), mode: mode))
        }
        if planned.isEmpty { return [] }
        if let problem = ChannelPath.problemWithRelative(folder) { throw PackError("Channel path '\(folder)' \(problem)") }
        let target = directory + "/" + folder
        if FileManager.default.fileExists(atPath: target) {
            throw PackError("\(target) already exists; a published file is never replaced (use a new release id, or remove it if no index names it)")
        }

        let staging = directory + "/.staging-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        var result: [ChannelIndex.InstallFile] = []
        do {
            try Self.makeDirectory(staging)
            for item in planned {
                let copy = staging + "/" + item.name
                try Self.writeAtomically(try Self.read(item.source), to: copy, mode: item.mode)
                let digest: (sha256: String, length: UInt64)
                do { digest = try ChannelFileDigest.compute(path: copy) } catch { throw PackError("Failed to hash \(copy): \(error)") }
                result.append(.init(kind: item.kind, file: .init(path: folder + "/" + item.name, sha256: digest.sha256, length: digest.length)))
            }
            try Self.makeDirectories(for: folder, under: directory)
            do throws(SystemError) { try Files.rename(staging, to: target) } catch { throw PackError(error) }
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        return result
    }

    /// Removes a release folder `addInstallFiles` made, when the index naming it could not be saved.
    func removeReleaseFolder(_ folder: String) {
        try? FileManager.default.removeItem(atPath: directory + "/" + folder)
    }

    /// The permission bits of `source`, which must be a readable regular file; `option` names the
    /// flag in the error ("cannot read --file source PATH: ENOENT (No such file or directory)").
    static func sourceMode(_ source: String, option: String) throws -> mode_t {
        let info: stat
        do throws(SystemError) {
            let file = try OpenFile(path: source, flags: O_RDONLY | O_NONBLOCK)
            info = try file.status()
        } catch {
            throw PackError("cannot read \(option) source \(source): \(SystemError.errnoText(error.errno))")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw PackError("cannot read \(option) source \(source): not a regular file")
        }
        return info.st_mode & 0o777
    }

    // MARK: File helpers

    /// The whole file at `path`, however large (a package may be).
    static func read(_ path: String) throws -> [UInt8] {
        do throws(SystemError) { return try Files.read(path, limit: .max) } catch { throw PackError(error) }
    }

    /// Creates `directory` and its missing parents if needed (a symbolic link to a directory is
    /// fine), and gives it mode 0755.
    static func makeDirectory(_ directory: String) throws {
        if let info = try? Files.status(directory), info.st_mode & S_IFMT == S_IFDIR {
            // Already there.
        } else {
            do throws(SystemError) { try Files.makeDirectories(directory, mode: 0o755) } catch { throw PackError(error) }
        }
        try? Files.setMode(directory, 0o755)
    }

    /// Creates the folders of `relative` below `root`, each 0755.
    static func makeDirectories(for relative: String, under root: String) throws {
        var path = root
        for component in relative.split(separator: "/").dropLast() {
            path += "/" + component
            try makeDirectory(path)
        }
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it, and renames it over `path`.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws {
        do throws(SystemError) { try Files.writeAtomically(path, bytes: bytes, mode: mode) } catch { throw PackError(error) }
    }

    /// Writes `text` to a new file of mode `mode`; refuses to replace an existing file.
    static func createExclusively(_ text: String, at path: String, mode: mode_t) throws {
        do throws(SystemError) {
            try Files.createExclusively(path, bytes: Array(text.utf8), mode: mode)
        } catch where error.errno == EEXIST {
            throw PackError("Failed to create \(path): it already exists (remove it first to replace it)")
        } catch {
            throw PackError(error)
        }
    }
}
