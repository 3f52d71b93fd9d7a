import Artifact
import Engine
import Glibc

/// What installing a baseline or fix changed.
public struct InstallResult: Sendable, Equatable {
    /// The release installed.
    public var releaseID: String
    /// The Debian packages installed, as `package=version`, in the release's order.
    public var installedDebs: [String]
    /// The plain files installed, by their declared destination.
    public var installedFiles: [String]

    /// A result.
    public init(releaseID: String, installedDebs: [String], installedFiles: [String]) {
        self.releaseID = releaseID
        self.installedDebs = installedDebs
        self.installedFiles = installedFiles
    }
}

/// Installs the verified content of a baseline or fix: Debian packages through dpkg, plain files
/// atomically with the previous version kept, and everything undone that can be if a step fails.
public struct ReleaseInstaller: Sendable {
    /// Where previous versions of replaced files are kept, under `<release id>/<destination>`.
    public let backupDirectory: String
    /// The dpkg program; `dpkg-deb` and `dpkg-query` are taken from the same directory.
    public let dpkg: String
    /// The root plain files are installed under ("/" on a host; a temporary tree in tests). dpkg
    /// always works on the host's own package database.
    public let root: String

    /// How many times dpkg is tried, a second apart, while another program holds its lock.
    static let lockAttempts = 60

    /// An installer keeping backups in `backupDirectory`.
    public init(backupDirectory: String, dpkg: String = "/usr/bin/dpkg", root: String = "/") {
        self.backupDirectory = backupDirectory
        self.dpkg = dpkg
        self.root = root
    }

    /// Installs `files` of release `releaseID`. Plain files first, each written beside its
    /// destination, fsynced, renamed over it (directory fsynced), the previous version kept in
    /// `backupDirectory/<release id>/<resolved destination>`; then every Debian package in one
    /// `dpkg --install` of the verified store copies, so the package database stays true and
    /// `dpkg --verify` stays clean. dpkg, not apt-get: the copies are already verified and apt would
    /// fetch from its own sources, so dependencies must already be satisfied. On failure every plain
    /// file already replaced is restored; what dpkg changed is not undone (reinstalling old versions
    /// needs their .debs, which the host may not have), and the error names each package whose
    /// version changed. Every destination is resolved first with `InstallPath` (no write goes
    /// through a directory or link another user controls), and two destinations naming one file are
    /// refused. Never leaves a half-written file at a destination.
    public func install(files: [InstallableFile], releaseID: String) throws -> InstallResult {
        let packages = files.filter { $0.kind == .deb }
        func failure(_ reason: String, _ rollback: String) -> AgentCoreError {
            .installFailed(releaseID: releaseID, reason: reason, rollback: rollback)
        }

        // Everything that can be checked before changing anything is checked first.
        var plainFiles: [PlainFile] = []
        var debs: [DebianPackage] = []
        do {
            plainFiles = try resolvePlainFiles(files)
            for package in packages { debs.append(try DebianPackage(path: package.storePath, dpkgDeb: tool("dpkg-deb"))) }
        } catch {
            throw failure(error.description, "nothing was changed")
        }

        var replaced: [Replacement] = []
        for file in plainFiles {
            do {
                replaced.append(try replace(file, releaseID: releaseID))
            } catch {
                throw failure("\(file.destination): \(error.description)", restore(replaced))
            }
        }

        if !debs.isEmpty {
            let before = debs.map { packageState(of: $0) }
            var outcome: Command.Outcome
            do {
                // apt, unattended-upgrades or another dpkg may hold dpkg's lock for a while; dpkg then
                // changes nothing and exits 2, so waiting and trying again is safe.
                var attempts = 0
                repeat {
                    if attempts > 0 { usleep(1_000_000) }
                    attempts += 1
                    outcome = try Command.run(dpkg, ["--install", "--force-confdef", "--force-confold"] + packages.map(\.storePath),
                                              environment: ["DEBIAN_FRONTEND": "noninteractive"])
                } while outcome.status == 2 && outcome.diagnostic.contains("lock") && attempts < Self.lockAttempts
            } catch {
                throw failure(error.description, restore(replaced) + "; dpkg did not start, so no package changed")
            }
            if outcome.status != 0 {
                var changed: [String] = []
                for (deb, old) in zip(debs, before) {
                    let new = packageState(of: deb)
                    if new != old { changed.append("\(deb.name) \(old ?? "not installed") → \(new ?? "not installed")") }
                }
                let dpkgNote = changed.isEmpty
                    ? "no package's installed version changed"
                    : "dpkg changes are not rolled back: " + changed.joined(separator: ", ")
                throw failure("dpkg --install exited with status \(outcome.status): \(outcome.diagnostic.trimmingTrailingNewlines)",
                              restore(replaced) + "; " + dpkgNote)
            }
        }
        return InstallResult(releaseID: releaseID, installedDebs: debs.map { "\($0.name)=\($0.version)" },
                             installedFiles: plainFiles.map(\.destination))
    }

    /// Installs the fixed Debian packages a hotpatch release carries, after its processes were
    /// patched: each package not installed on this host (`dpkg-query`, for its architecture) is
    /// left alone (only upgrades, like `apt-get --only-upgrade`), as is each whose installed
    /// version is already the carried one or newer (`dpkg --compare-versions … ge …`); the rest
    /// go through `install(files:releaseID:)` (one `dpkg --install` of the verified store copies).
    /// Returns what was done with each package, in the release's order. Never asks for a reboot:
    /// the running processes already run the fix in memory, and new ones load the fixed files.
    /// Throws `AgentCoreError.installFailed` with dpkg's reason, and which package versions changed.
    public func installCarried(packages: [InstallableFile], releaseID: String) throws -> [CarriedPackageState] {
        var debs: [DebianPackage] = []
        do {
            for package in packages {
                guard package.kind == .deb else {
                    throw AgentCoreError.systemCall(name: "install", errno: EINVAL,
                                                    subject: "\(package.channelPath) (a hotpatch carries Debian packages only)")
                }
                debs.append(try DebianPackage(path: package.storePath, dpkgDeb: tool("dpkg-deb")))
            }
        } catch {
            throw AgentCoreError.installFailed(releaseID: releaseID, reason: "\(error)", rollback: "nothing was changed")
        }
        var states: [CarriedPackageState] = []
        var toInstall: [InstallableFile] = []
        for (file, deb) in zip(packages, debs) {
            guard let installed = installedVersion(of: deb) else {
                // Only upgrade what the host has (`apt-get --only-upgrade`): a carried package the
                // host never installed is not the host's to gain.
                states.append(.init(name: deb.name, architecture: deb.architecture, version: deb.version,
                                    action: .notInstalled, previousVersion: nil))
                continue
            }
            if versionIsAtLeast(installed, deb.version) {
                states.append(.init(name: deb.name, architecture: deb.architecture, version: deb.version,
                                    action: .alreadyCurrent, previousVersion: installed))
            } else {
                states.append(.init(name: deb.name, architecture: deb.architecture, version: deb.version,
                                    action: .installed, previousVersion: installed))
                toInstall.append(file)
            }
        }
        if !toInstall.isEmpty { _ = try install(files: toInstall, releaseID: releaseID) }
        return states
    }

    /// Whether Debian version `installed` is `wanted` or newer (`dpkg --compare-versions A ge B`);
    /// false when dpkg cannot compare them (then the package is installed, and dpkg decides).
    private func versionIsAtLeast(_ installed: String, _ wanted: String) -> Bool {
        (try? Command.run(dpkg, ["--compare-versions", installed, "ge", wanted]))?.status == 0
    }

    /// Whether the disk already holds this content: every plain file's SHA-256 equals the declared
    /// one and every package is installed at the package's version. An empty list matches. Used on
    /// first start to adopt the current baseline without a reboot.
    public func matchesDisk(files: [InstallableFile]) -> Bool {
        for file in files {
            switch file.kind {
            case let .file(destination, _):
                let path = onDisk(destination)
                guard let info = try? FileSystem.status(path), info.st_mode & S_IFMT == S_IFREG,
                      let digest = try? ChannelFileDigest.compute(path: path), digest.sha256 == file.sha256.lowercased()
                else { return false }
            case .deb:
                guard let deb = try? DebianPackage(path: file.storePath, dpkgDeb: tool("dpkg-deb")),
                      installedVersion(of: deb) == deb.version
                else { return false }
            }
        }
        return true
    }

    // MARK: - Plain files

    /// A plain file replaced, and how to put back what was there.
    private struct Replacement {
        var path: String
        /// The copy of the previous version, or nil when there was no file.
        var backup: String?
        var mode: mode_t
        var owner: (user: uid_t, group: gid_t)
    }

    private func onDisk(_ destination: String) -> String {
        root == "/" ? destination : root + destination
    }

    private func tool(_ name: String) -> String {
        FileSystem.directoryName(dpkg) + "/" + name
    }

    /// A plain file of the release, its destination resolved on this host.
    private struct PlainFile {
        /// The destination the index declares.
        var destination: String
        /// Where it is written: `onDisk(destination)` with every symbolic link resolved.
        var path: String
        var storePath: String
        var mode: mode_t
    }

    /// Resolves every plain file's destination and refuses what cannot be replaced by a rename: a
    /// relative or unnormalised path, a missing or untrusted directory, something other than a
    /// regular file, and two destinations that name one file (the second would overwrite the
    /// first's backup, and the rollback would restore the wrong content).
    private func resolvePlainFiles(_ files: [InstallableFile]) throws(AgentCoreError) -> [PlainFile] {
        var result: [PlainFile] = []
        var seen: [String: String] = [:]
        for file in files {
            guard case let .file(destination, mode) = file.kind else { continue }
            guard destination.hasPrefix("/"), !destination.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                .contains(where: { $0.isEmpty || $0 == "." || $0 == ".." })
            else {
                throw .systemCall(name: "install", errno: EINVAL, subject: "\(destination) (not a normalised absolute path)")
            }
            let path = try InstallPath.resolve(onDisk(destination))
            if let info = try FileSystem.status(path), info.st_mode & S_IFMT != S_IFREG {
                throw .systemCall(name: "replace", errno: EISDIR,
                                  subject: "\(path) (not a regular file; releases replace regular files only)")
            }
            if let first = seen.updateValue(destination, forKey: path) {
                throw .systemCall(name: "install", errno: EEXIST,
                                  subject: "\(destination) (the release also installs \(first) and both name \(path))")
            }
            result.append(PlainFile(destination: destination, path: path, storePath: file.storePath, mode: mode_t(mode)))
        }
        return result
    }

    /// Backs up what is at the file's resolved path, then installs its store copy there atomically.
    private func replace(_ file: PlainFile, releaseID: String) throws(AgentCoreError) -> Replacement {
        var replacement = Replacement(path: file.path, backup: nil, mode: 0, owner: (0, 0))
        var owner: (user: uid_t, group: gid_t)?
        if let info = try FileSystem.status(file.path) {
            // Keyed by the whole resolved path: one file, one backup, whatever the destination's spelling.
            let backup = backupDirectory + "/" + releaseID + file.path
            try FileSystem.makeDirectories(FileSystem.directoryName(backup), mode: 0o700)
            try FileSystem.copyAtomically(from: file.path, to: backup, mode: info.st_mode & 0o7777, owner: (info.st_uid, info.st_gid))
            replacement = Replacement(path: file.path, backup: backup, mode: info.st_mode & 0o7777, owner: (info.st_uid, info.st_gid))
            // A replaced file keeps its owner (e.g. root:ssl-cert); a new one belongs to the agent (root).
            owner = (info.st_uid, info.st_gid)
        }
        try FileSystem.copyAtomically(from: file.storePath, to: file.path, mode: file.mode, owner: owner)
        return replacement
    }

    /// Puts back every replaced file, newest first; says what was and was not restored.
    private func restore(_ replaced: [Replacement]) -> String {
        if replaced.isEmpty { return "no file had been replaced" }
        var failures: [String] = []
        for item in replaced.reversed() {
            do {
                if let backup = item.backup {
                    try FileSystem.copyAtomically(from: backup, to: item.path, mode: item.mode, owner: item.owner)
                } else {
                    try FileSystem.removeFile(item.path)
                    try FileSystem.syncDirectory(FileSystem.directoryName(item.path))
                }
            } catch {
                failures.append("\(item.path) (\(error.description); previous version at \(item.backup ?? "none: remove the file"))")
            }
        }
        let restored = replaced.count - failures.count
        var text = "restored \(restored) replaced file\(restored == 1 ? "" : "s")"
        if !failures.isEmpty { text += "; could NOT restore " + failures.joined(separator: ", ") }
        return text
    }

    // MARK: - Debian packages

    /// The fully installed version of `deb`'s package for its architecture, or nil.
    private func installedVersion(of deb: DebianPackage) -> String? {
        guard let state = packageState(of: deb), state.hasPrefix("installed ") else { return nil }
        return String(state.dropFirst("installed ".count))
    }

    /// dpkg's status and version of `deb`'s package ("installed 1.2-3", "unpacked 1.2-4"), or nil
    /// when dpkg does not know it; compared before and after a failed install to name what changed.
    private func packageState(of deb: DebianPackage) -> String? {
        guard let outcome = try? Command.run(tool("dpkg-query"), ["-W", "-f=${db:Status-Status} ${Version}", "\(deb.name):\(deb.architecture)"]),
              outcome.status == 0, !outcome.output.isEmpty, !outcome.output.hasPrefix("not-installed")
        else { return nil }
        return outcome.output
    }
}

/// The identity of a .deb file, read with `dpkg-deb --show`.
struct DebianPackage {
    var name: String
    var version: String
    var architecture: String

    init(path: String, dpkgDeb: String) throws(AgentCoreError) {
        let outcome = try Command.run(dpkgDeb, ["--show", "--showformat=${Package}\t${Version}\t${Architecture}", path])
        let fields = outcome.output.split(separator: "\t", omittingEmptySubsequences: false)
        guard outcome.status == 0, fields.count == 3, fields.allSatisfy({ !$0.isEmpty }) else {
            throw .commandFailed(command: "dpkg-deb --show \(path)", status: outcome.status, output: outcome.diagnostic)
        }
        name = String(fields[0])
        version = String(fields[1])
        architecture = String(fields[2])
    }
}
