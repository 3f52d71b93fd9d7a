import Foundation
import LinuxSystem

/// What the verifier accepts beyond the format's fixed rules (the agent's configuration).
public struct ChannelPolicy: Sendable, Equatable {
    /// Accept a channel that users other than root can write (like sshd's `StrictModes no`).
    public var allowGroupOrWorldWritable: Bool = false
    /// Hard cap on the size of `index.json`.
    public var maxIndexBytes: Int = 16 << 20
    /// Hard cap on the declared length of any file in the channel.
    public var maxFileBytes: UInt64 = 4 << 30

    /// The default policy: strict permissions, 16 MiB index, 4 GiB files.
    public init(allowGroupOrWorldWritable: Bool = false, maxIndexBytes: Int = 16 << 20, maxFileBytes: UInt64 = 4 << 30) {
        self.allowGroupOrWorldWritable = allowGroupOrWorldWritable
        self.maxIndexBytes = maxIndexBytes
        self.maxFileBytes = maxFileBytes
    }
}

/// A file that a baseline or fix installs (or a package a hotpatch carries), already verified and
/// copied into the store.
public struct InstallableFile: Hashable, Sendable {
    /// What it is, as the index says (a Debian package, or a plain file with its destination and mode).
    public typealias Kind = ChannelIndex.InstallFile.Kind
    public var kind: Kind
    /// Where it was in the channel, relative to the channel directory.
    public var channelPath: String
    /// The verified copy to install from.
    public var storePath: String
    public var sha256: String
    public var length: UInt64
}

/// A verified hotpatch release: the `Hotpatch` the Engine applies, and its human context.
public struct HotpatchRelease: Hashable, Sendable {
    /// What the Engine applies; every `patchObjectPath` is a verified copy in the store.
    public var hotpatch: Hotpatch
    public var description: String
    public var cves: [String]
    /// Its kernel live patch modules, one per kernel build (empty for a processes-only release);
    /// every `modulePath` is a verified copy in the store.
    public var kernel: [KernelLivePatch] = []
    /// The fixed Debian packages it brings to the disk once its processes are patched (all of kind
    /// deb, verified copies in the store; empty for a release that changes memory only).
    public var packages: [InstallableFile] = []
    public var id: String { hotpatch.id }

    /// Describes a verified hotpatch release.
    public init(hotpatch: Hotpatch, description: String, cves: [String], kernel: [KernelLivePatch] = [],
                packages: [InstallableFile] = []) {
        self.hotpatch = hotpatch
        self.description = description
        self.cves = cves
        self.kernel = kernel
        self.packages = packages
    }
}

/// A verified baseline: a cumulative update that needs a reboot.
public struct BaselineRelease: Hashable, Sendable {
    public var id: String
    /// Planned (the regular cadence) or unplanned (e.g. a zero-day that could not be hotpatched).
    public var planned: Bool
    public var description: String
    public var cves: [String]
    /// What to install; a baseline with no files is valid.
    public var files: [InstallableFile]
}

/// A verified non-hotpatchable fix for a baseline: installed, then a reboot.
public struct FixRelease: Hashable, Sendable {
    public var id: String
    public var baseline: String
    public var description: String
    public var cves: [String]
    public var files: [InstallableFile]
}

/// One verified release, in the index's publication order.
public enum ChannelRelease: Hashable, Sendable {
    case hotpatch(HotpatchRelease)
    case baseline(BaselineRelease)
    case fix(FixRelease)

    public var id: String {
        switch self {
        case let .hotpatch(release): return release.id
        case let .baseline(release): return release.id
        case let .fix(release): return release.id
        }
    }

    public var description: String {
        switch self {
        case let .hotpatch(release): return release.description
        case let .baseline(release): return release.description
        case let .fix(release): return release.description
        }
    }

    public var cves: [String] {
        switch self {
        case let .hotpatch(release): return release.cves
        case let .baseline(release): return release.cves
        case let .fix(release): return release.cves
        }
    }
}

/// A channel that passed every check, with every file it names copied into the store.
public struct VerifiedChannel: Sendable {
    /// The index version; the caller stores it as the new highest accepted version.
    public var version: Int
    public var expires: Date
    /// All releases in publication order.
    public var releases: [ChannelRelease]
    /// The hotpatches, ready for the Engine (patch objects in the store).
    public var hotpatches: [Hotpatch] {
        releases.compactMap { if case let .hotpatch(release) = $0 { return release.hotpatch } else { return nil } }
    }
    /// The hotpatch releases, in publication order (with their kernel live patch modules).
    public var hotpatchReleases: [HotpatchRelease] {
        releases.compactMap { if case let .hotpatch(release) = $0 { return release } else { return nil } }
    }
    /// The baselines, oldest first: the last one is the newest baseline.
    public var baselines: [BaselineRelease] {
        releases.compactMap { if case let .baseline(release) = $0 { return release } else { return nil } }
    }
    /// The fixes, in publication order.
    public var fixes: [FixRelease] {
        releases.compactMap { if case let .fix(release) = $0 { return release } else { return nil } }
    }
    /// Fingerprint (hex SHA-256 of the raw public key) of the trusted key that signed the index.
    public var keyFingerprint: String
    /// SHA-256 of the exact index bytes that were verified.
    public var indexSHA256: String
}

/// What a check of the channel found (`ChannelVerifier.check`).
public enum ChannelCheckOutcome: Sendable {
    /// Every check passed.
    case verified(VerifiedChannel)
    /// What a publisher or a sync tool produces while it writes the channel, so it may complete by
    /// itself: the index without its signature, a signature that is malformed or does not match the
    /// index's bytes, a file the signed index names that is missing or shorter than declared, or an
    /// entry that vanished while it was checked. `refusal` is what it is reported as if it persists.
    case incomplete(ChannelRefusal)
    /// Anything else: a key not trusted, an expired or rolled-back index, a parse error of a signed
    /// index, a complete file with another hash, unsafe permissions, the store failing…
    case refused(ChannelRefusal)
}

/// Verifies a channel directory as the agent does: signature by a trusted key, freshness,
/// format and consistency, permissions, and every file by hash and length through a copy in the store.
public struct ChannelVerifier: Sendable {
    public let channelDirectory: String
    public let trustedKeysDirectory: String
    public let storeDirectory: String
    public let policy: ChannelPolicy

    /// The file names of the index and its signature inside the channel.
    public static let indexFileName = "index.json"
    public static let signatureFileName = "index.json.sig"

    public init(channelDirectory: String, trustedKeysDirectory: String, storeDirectory: String, policy: ChannelPolicy = .init()) {
        self.channelDirectory = channelDirectory
        self.trustedKeysDirectory = trustedKeysDirectory
        self.storeDirectory = storeDirectory
        self.policy = policy
    }

    /// Verifies the channel. `highestAcceptedVersion` is the highest index version the caller
    /// accepted before (nil on first use); a lower one is refused as a rollback, an equal one is
    /// accepted (the same index read again). The index is refused from the instant `now` reaches
    /// `expires`. An accepted index is kept, with its signature, in the store (see `verifyKept`).
    /// Throws `ArtifactError.channel` naming the file and the reason.
    public func verify(highestAcceptedVersion: Int?, now: Date) throws(ArtifactError) -> VerifiedChannel {
        var step = Step.permissions
        do throws(ChannelRefusal) {
            return try run(highestAcceptedVersion: highestAcceptedVersion, now: now, step: &step)
        } catch {
            throw .channel(error)
        }
    }

    /// Verifies the channel as `verify` does, and tells a publication still being written (the
    /// commit point, `index.json.sig`, not yet renamed into place after its index; a file the signed
    /// index names not synced yet) from a refusal. The caller decides how long an incomplete
    /// channel may stay so before it reports it (the agent: `ChannelStanding.settleSeconds`).
    public func check(highestAcceptedVersion: Int?, now: Date) -> ChannelCheckOutcome {
        var step = Step.permissions
        do throws(ChannelRefusal) {
            return .verified(try run(highestAcceptedVersion: highestAcceptedVersion, now: now, step: &step))
        } catch {
            return Self.isUnfinishedPublication(error, at: step) ? .incomplete(error) : .refused(error)
        }
    }

    /// Where `run` was when it refused: what a refusal means depends on it.
    enum Step {
        /// The channel's permissions (an entry may vanish under a sync tool's renames).
        case permissions
        /// The trusted keys: the host's own, never incomplete.
        case keys
        /// Reading `index.json`.
        case index
        /// Reading `index.json.sig`.
        case signatureFile
        /// Checking the signature over the index's bytes.
        case signature
        /// Parsing the authenticated index, rollback and expiry: a signed index is complete.
        case content
        /// The files the index names, copied into the store.
        case files
    }

    /// Whether `refusal`, met at `step`, is what a publisher or sync tool mid-write produces
    /// (a file not there yet, the signature of the previous index, a short copy) rather than a fault.
    static func isUnfinishedPublication(_ refusal: ChannelRefusal, at step: Step) -> Bool {
        switch (step, refusal) {
        case (.signatureFile, .missingSignature), (.signature, .badSignature), (.files, .lengthMismatch):
            return true
        case let (.permissions, .unreadableFile(path, _)), let (.index, .unreadableFile(path, _)),
             let (.signatureFile, .unreadableFile(path, _)), let (.files, .unreadableFile(path, _)):
            return isAbsent(path)
        default:
            return false
        }
    }

    /// Whether nothing is at `path` (or one of its folders is missing) now.
    private static func isAbsent(_ path: String) -> Bool {
        do throws(SystemError) {
            _ = try ChannelFiles.linkStatus(path)
            return false
        } catch {
            return error.errno == ENOENT || error.errno == ENOTDIR
        }
    }

    /// The last index `verify` accepted, as kept in the store, checked again: its signature against
    /// the trusted keys as they are now, its format, and every file's verified copy in the store by
    /// hash and length. Neither `expires` nor the channel directory is looked at: this is what stays
    /// in force when the channel is missing, expired or rolled back. Nil when nothing was ever kept.
    /// Throws `ArtifactError.channel` naming the file and the reason.
    public func verifyKept() throws(ArtifactError) -> VerifiedChannel? {
        do throws(ChannelRefusal) {
            return try runKept()
        } catch {
            throw .channel(error)
        }
    }

    private func run(highestAcceptedVersion: Int?, now: Date, step: inout Step) throws(ChannelRefusal) -> VerifiedChannel {
        step = .index
        let root: String
        do { root = try ChannelFiles.realPath(channelDirectory) } catch {
            throw .unreadableFile(path: channelDirectory, reason: ChannelFiles.reasonText(error))
        }
        step = .permissions
        if !policy.allowGroupOrWorldWritable { try ChannelFiles.checkPermissions(root: root) }
        step = .keys
        let keys = try loadTrustedKeys()

        // Authenticate the exact bytes before parsing anything.
        step = .index
        let indexDisplay = root + "/" + Self.indexFileName
        let signatureDisplay = root + "/" + Self.signatureFileName
        let indexPath = try ChannelFiles.resolve(Self.indexFileName, inChannel: root)
        let indexBytes = try ChannelFiles.readSmallFile(indexPath, limit: policy.maxIndexBytes,
                                                        tooLarge: .indexTooLarge(path: indexDisplay, limit: policy.maxIndexBytes))
        step = .signatureFile
        if (try? ChannelFiles.linkStatus(signatureDisplay)) == nil { throw .missingSignature(path: signatureDisplay) }
        let signaturePath = try ChannelFiles.resolve(Self.signatureFileName, inChannel: root)
        let signatureBytes = try ChannelFiles.readSmallFile(signaturePath, limit: 4096,
                                                            tooLarge: .badSignature(path: signatureDisplay, reason: "larger than 4096 bytes"))
        step = .signature
        let key = try authenticate(indexBytes, signature: signatureBytes, keys: keys,
                                   indexDisplay: indexDisplay, signatureDisplay: signatureDisplay)

        // Parse, then check freshness against the caller's state and the clock.
        step = .content
        let index = try ChannelIndex.parse(indexBytes, path: indexDisplay)
        if let highest = highestAcceptedVersion, index.version < highest {
            throw .rollback(path: indexDisplay, version: index.version, highestAccepted: highest)
        }
        let nowSeconds = now.timeIntervalSince1970
        guard nowSeconds < index.expiresSeconds else {
            throw .expired(path: indexDisplay, expires: index.expires, now: RFC3339.format(nowSeconds))
        }

        // Copy every file into the store and verify the copy.
        let store = ChannelStore(directory: storeDirectory)
        try store.prepare()
        step = .files
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ChannelFiles.chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        var admitted: [String: String] = [:]
        let releases = try verifiedReleases(of: index) { (reference: ChannelIndex.FileReference, installMode: mode_t?) throws(ChannelRefusal) -> String in
            let display = root + "/" + reference.path
            guard reference.length <= policy.maxFileBytes else {
                throw .declaredLengthTooLarge(path: display, length: reference.length, limit: policy.maxFileBytes)
            }
            let key = reference.path + "\u{0}" + reference.sha256 + "\u{0}" + String(reference.length) + "\u{0}" + (installMode.map { String($0, radix: 8) } ?? "object")
            if let done = admitted[key] { return done }
            let source = try ChannelFiles.resolve(reference.path, inChannel: root)
            let copy = try store.admit(reference, source: source, display: display, buffer: buffer, installMode: installMode)
            admitted[key] = copy
            return copy
        }
        let patchObjects = index.releases.flatMap(\.loadedFileReferences)
        store.removePublicCopies(of: index.releases.flatMap { $0.installFiles.map(\.file) },
                                 keeping: Set(patchObjects.map { store.objectPath(for: $0) }))
        try store.keepIndex(indexBytes, signature: signatureBytes, maxIndexBytes: policy.maxIndexBytes)
        return VerifiedChannel(version: index.version, expires: Date(timeIntervalSince1970: index.expiresSeconds),
                               releases: releases, keyFingerprint: key.fingerprint,
                               indexSHA256: ChannelKeys.sha256(indexBytes))
    }

    private func runKept() throws(ChannelRefusal) -> VerifiedChannel? {
        let store = ChannelStore(directory: storeDirectory)
        guard let kept = try store.keptIndex(maxIndexBytes: policy.maxIndexBytes) else { return nil }
        let keys = try loadTrustedKeys()
        let display = store.keptIndexPath
        let key = try authenticate(kept.index, signature: kept.signature, keys: keys, indexDisplay: display, signatureDisplay: display)
        let index = try ChannelIndex.parse(kept.index, path: display)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: ChannelFiles.chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        let releases = try verifiedReleases(of: index) { (reference: ChannelIndex.FileReference, installMode: mode_t?) throws(ChannelRefusal) -> String in
            try store.existingCopy(of: reference, installMode: installMode, display: reference.path, buffer: buffer)
        }
        return VerifiedChannel(version: index.version, expires: Date(timeIntervalSince1970: index.expiresSeconds),
                               releases: releases, keyFingerprint: key.fingerprint,
                               indexSHA256: ChannelKeys.sha256(kept.index))
    }

    /// The trusted key whose Ed25519 signature (the text of `index.json.sig`) matches `indexBytes`.
    private func authenticate(_ indexBytes: [UInt8], signature signatureBytes: [UInt8], keys: [TrustedKey],
                              indexDisplay: String, signatureDisplay: String) throws(ChannelRefusal) -> TrustedKey {
        guard let signatureText = String(validating: signatureBytes, as: UTF8.self) else {
            throw .badSignature(path: signatureDisplay, reason: "not UTF-8 text")
        }
        let signature = try IndexSignature.parse(signatureText, path: signatureDisplay)
        guard let key = keys.first(where: { $0.rawRepresentation == signature.publicKey }) else {
            throw .untrustedKey(path: signatureDisplay, fingerprint: ChannelKeys.fingerprint(signature.publicKey))
        }
        guard key.isValidSignature(signature.signature, for: indexBytes) else {
            throw .badSignature(path: indexDisplay, reason: "the signature in \(Self.signatureFileName) does not match these bytes")
        }
        return key
    }

    /// The index's releases with every file replaced by the store copy `admit` vouches for.
    private func verifiedReleases(
        of index: ChannelIndex, admit: (ChannelIndex.FileReference, _ installMode: mode_t?) throws(ChannelRefusal) -> String
    ) throws(ChannelRefusal) -> [ChannelRelease] {
        func installable(_ files: [ChannelIndex.InstallFile]) throws(ChannelRefusal) -> [InstallableFile] {
            var out: [InstallableFile] = []
            for entry in files {
                let storeMode: mode_t
                switch entry.kind {
                case .deb: storeMode = ChannelStore.packageMode
                case let .file(_, mode): storeMode = mode_t(mode & 0o777)
                }
                out.append(InstallableFile(kind: entry.kind, channelPath: entry.file.path, storePath: try admit(entry.file, storeMode),
                                           sha256: entry.file.sha256, length: entry.file.length))
            }
            return out
        }
        var releases: [ChannelRelease] = []
        for release in index.releases {
            switch release {
            case let .hotpatch(id, baseline, level, text, cves, targets, kernel, files):
                var verifiedTargets: [HotpatchTarget] = []
                for target in targets {
                    verifiedTargets.append(HotpatchTarget(buildID: target.buildID, pathHint: target.pathHint,
                                                          patchObjectPath: try admit(target.patchObject, nil),
                                                          redirections: target.redirections, references: target.references))
                }
                let hotpatch = Hotpatch(id: id, baseline: baseline, level: level, targets: verifiedTargets)
                var modules: [KernelLivePatch] = []
                for entry in kernel {
                    modules.append(KernelLivePatch(kernelRelease: entry.release, buildID: entry.buildID, livepatchName: entry.livepatch,
                                                   modulePath: try admit(entry.module, nil), moduleSHA256: entry.module.sha256))
                }
                releases.append(.hotpatch(HotpatchRelease(hotpatch: hotpatch, description: text, cves: cves, kernel: modules,
                                                          packages: try installable(files))))
            case let .baseline(id, planned, text, cves, files):
                releases.append(.baseline(BaselineRelease(id: id, planned: planned, description: text, cves: cves,
                                                          files: try installable(files))))
            case let .fix(id, baseline, text, cves, files):
                releases.append(.fix(FixRelease(id: id, baseline: baseline, description: text, cves: cves,
                                                files: try installable(files))))
            }
        }
        return releases
    }

    /// Every key in the trusted-keys directory (one file a key; names starting with '.' are skipped),
    /// read as `ChannelFiles.readTrustedKeyFiles` allows: small regular files only root may change.
    private func loadTrustedKeys() throws(ChannelRefusal) -> [TrustedKey] {
        var keys: [TrustedKey] = []
        for (path, bytes) in try ChannelFiles.readTrustedKeyFiles(in: trustedKeysDirectory) {
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw .malformedTrustedKey(path: path, reason: "not UTF-8 text")
            }
            keys.append(try TrustedKey.parse(text, path: path))
        }
        guard !keys.isEmpty else { throw .noTrustedKeys(path: trustedKeysDirectory) }
        return keys
    }
}
