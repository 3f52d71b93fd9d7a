import Engine
import Foundation
import Glibc

/// The publisher's view of a channel directory: reads and rewrites the (unsigned) index, copies
/// release files in. Every file is written to a temporary name and renamed, with modes 0644/0755
/// whatever the umask, so a channel built here passes the agent's permission check.
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
    func addInstallFiles(debs: [String], files: [String], folder: String) throws -> [ChannelIndex.InstallFile] {
        var names = Set<String>()
        func name(of source: String) throws -> String {
            let name = (source as NSString).lastPathComponent
            guard names.insert(name).inserted else { throw PackError("Two files are named \(name); rename one") }
            return name
        }
        var result: [ChannelIndex.InstallFile] = []
        for deb in debs {
            result.append(.init(kind: .deb, file: try addFile(deb, at: folder + "/" + name(of: deb))))
        }
        for spec in files {
            guard let equals = spec.firstIndex(of: "=") else { throw PackError("--file \(spec): expected SRC=DEST") }
            let source = String(spec[..<equals])
            let destination = String(spec[spec.index(after: equals)...])
            if let problem = ChannelPath.problemWithDestination(destination) {
                throw PackError("--file \(spec): destination '\(destination)' \(problem)")
            }
            let attributes = try FileManager.default.attributesOfItem(atPath: source)
            let mode = ((attributes[.posixPermissions] as? NSNumber)?.uint32Value ?? 0o644) & 0o777
            result.append(.init(kind: .file(destination: destination, mode: mode),
                                file: try addFile(source, at: folder + "/" + name(of: source))))
        }
        return result
    }

    // MARK: File helpers

    static func read(_ path: String) throws -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PackError("Failed to read \(path): \(error.localizedDescription)")
        }
    }

    /// Creates `directory` (mode 0755) if needed.
    static func makeDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw PackError("Failed to create \(directory): \(error.localizedDescription)")
        }
        chmod(directory, 0o755)
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
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PackError("Failed to create \(temporary): \(String(cString: strerror(errno)))") }
        var failure: String?
        var done = 0
        while done < bytes.count && failure == nil {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno != EINTR { failure = String(cString: strerror(errno)) } else if n > 0 { done += n }
        }
        if failure == nil && fchmod(fd, mode) != 0 { failure = String(cString: strerror(errno)) }
        if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary)
            throw PackError("Failed to write \(path): \(failure)")
        }
    }

    /// Writes `text` to a new file of mode `mode`; refuses to replace an existing file.
    static func createExclusively(_ text: String, at path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "it already exists (remove it first to replace it)" : String(cString: strerror(errno))
            throw PackError("Failed to create \(path): \(reason)")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard fchmod(fd, mode) == 0,
              bytes.withUnsafeBytes({ write(fd, $0.baseAddress!, $0.count) }) == bytes.count, fsync(fd) == 0
        else { throw PackError("Failed to write \(path): \(String(cString: strerror(errno)))") }
    }
}
