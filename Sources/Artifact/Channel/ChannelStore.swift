import Glibc
import LinuxSystem

/// The agent's own content-addressed copy of what it accepted from the channel:
/// `<store>/objects/<sha256><extension>` for patch objects and
/// `<store>/installs/<sha256>-<mode><extension>` for the files of baselines and fixes. The Engine
/// loads patch objects from here, never from the channel, so a channel file changed after
/// verification is never the one loaded; and because the name is the content's hash,
/// `/proc/PID/maps` identifies a loaded patch object by its file name.
///
/// Modes: patched processes of every user open the patch objects, so `objects/` is 0755 and its
/// copies 0444. A baseline or fix file keeps the mode its index declares (a 0600 key stays 0600)
/// in `installs/`, which is 0700: only the agent ever reads those.
///
/// Every verification re-hashes the store copy it hands out, so a damaged or half-written copy
/// (e.g. after a crash; copies are not fsynced for that reason) is found and replaced from the channel.
struct ChannelStore {
    /// The store's root directory.
    let directory: String

    var objectsDirectory: String { directory + "/objects" }
    var installsDirectory: String { directory + "/installs" }

    /// The last index the verifier accepted, kept with its signature in one file so that the pair
    /// is replaced in one rename: the signature file's line, then the exact index bytes.
    var keptIndexPath: String { directory + "/verified-index" }

    /// The largest kept index file read back: the verifier's index cap plus a signature line.
    static func keptIndexLimit(maxIndexBytes: Int) -> Int { maxIndexBytes + 4096 }

    /// A patch object's mode in the store.
    static let patchObjectMode: mode_t = 0o444
    /// A Debian package's mode in the store.
    static let packageMode: mode_t = 0o644

    /// Creates `<store>`, `<store>/objects` (0755) and `<store>/installs` (0700; an existing one
    /// is brought back to 0700).
    func prepare() throws(ChannelRefusal) {
        for (path, mode) in [(directory, mode_t(0o755)), (objectsDirectory, 0o755), (installsDirectory, 0o700)] {
            do throws(SystemError) {
                try Files.makeDirectoryIfAbsent(path, mode: mode)
                let info = try ChannelFiles.linkStatus(path)
                guard info.st_mode & S_IFMT == S_IFDIR else { throw SystemError(call: "mkdir", errno: ENOTDIR, subject: path) }
                if mode == 0o700, info.st_mode & 0o777 != mode {
                    try Files.setMode(path, mode)
                }
            } catch {
                throw .storeFailure(path: path, reason: ChannelFiles.reasonText(error))
            }
        }
    }

    /// The store path for a file with this hash and channel path: a patch object when
    /// `installMode` is nil, else a baseline or fix file stored with that mode.
    func objectPath(for reference: ChannelIndex.FileReference, installMode: mode_t? = nil) -> String {
        guard let installMode else {
            return objectsDirectory + "/" + reference.sha256 + ChannelPath.safeExtension(of: reference.path)
        }
        return installsDirectory + "/" + reference.sha256 + "-" + String(installMode, radix: 8) + ChannelPath.safeExtension(of: reference.path)
    }

    /// Makes sure the store holds a verified copy of the channel file `source` (already resolved
    /// inside the channel; `display` names it in refusals) and returns the copy's path.
    /// `installMode` nil admits a patch object (0444 in `objects/`); a mode admits a baseline or fix
    /// file with that mode into `installs/`.
    func admit(_ reference: ChannelIndex.FileReference, source: String, display: String,
               buffer: UnsafeMutableRawBufferPointer, installMode: mode_t? = nil) throws(ChannelRefusal) -> String {
        let target = objectPath(for: reference, installMode: installMode)
        let mode = installMode ?? Self.patchObjectMode
        if existingCopyIsValid(target, reference: reference, mode: mode, buffer: buffer) { return target }

        // Copy at most length + 1 bytes from the channel into a temporary file of the store.
        var suffix = SystemRandomNumberGenerator()
        let temporary = (installMode == nil ? objectsDirectory : installsDirectory) + "/.incoming-" + Hex.encode(withUnsafeBytes(of: suffix.next()) { Array($0) })
        defer { try? Files.removeIfPresent(temporary) }
        do {
            let input = try OpenFile(path: source, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            let info = try input.status()
            guard info.st_mode & S_IFMT == S_IFREG else { throw ChannelRefusal.notRegularFile(path: display) }
            let output = try OpenFile(path: temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o400)
            // Exactly `mode`, whatever the umask (set before a byte is written).
            try output.setMode(mode)
            let copied = try ChannelFiles.measure(input, length: reference.length, buffer: buffer) { (chunk) throws(SystemError) in
                try output.write(chunk)
            }
            switch copied {
            case let .short(actual):
                throw ChannelRefusal.lengthMismatch(path: display, expected: reference.length, actual: actual)
            case .long:
                throw ChannelRefusal.fileTooLarge(path: display, declared: reference.length)
            case .complete:
                break // The digest that counts is the copy's, below.
            }
        } catch let refusal as ChannelRefusal {
            throw refusal
        } catch let error as SystemError {
            if error.subject == temporary {
                throw .storeFailure(path: temporary, reason: ChannelFiles.reasonText(error))
            }
            throw .unreadableFile(path: display, reason: ChannelFiles.reasonText(error))
        } catch {
            throw .unreadableFile(path: display, reason: ChannelFiles.reasonText(error))
        }

        // Verify the copy itself, then give it its content-addressed name.
        let measured: ChannelFiles.Measure
        do {
            let copy = try OpenFile(path: temporary, flags: O_RDONLY | O_NOFOLLOW)
            measured = try ChannelFiles.measure(copy, length: reference.length, buffer: buffer)
        } catch {
            throw .storeFailure(path: temporary, reason: ChannelFiles.reasonText(error))
        }
        switch measured {
        case let .complete(sha256) where sha256 == reference.sha256:
            break
        case let .complete(sha256):
            throw .hashMismatch(path: display, expected: reference.sha256, actual: sha256)
        case .short, .long:
            throw .storeFailure(path: temporary, reason: "the copy's length changed while it was verified")
        }
        do {
            try Files.rename(temporary, to: target)
        } catch {
            throw .storeFailure(path: target, reason: ChannelFiles.reasonText(error))
        }
        return target
    }

    /// Keeps `index` and its `signature` file text as the last verified index (atomically: a
    /// temporary file, fsync, rename, fsync of the store; 0600, only the agent reads it). Nothing is
    /// written when they are kept already.
    func keepIndex(_ index: [UInt8], signature: [UInt8], maxIndexBytes: Int) throws(ChannelRefusal) {
        let content = signature + index
        let path = keptIndexPath
        if let current = try? ChannelFiles.readSmallFile(path, limit: Self.keptIndexLimit(maxIndexBytes: maxIndexBytes),
                                                          tooLarge: .storeFailure(path: path, reason: "too large")),
           current == content { return }
        let temporary = path + ".incoming"
        do {
            try? Files.removeIfPresent(temporary)
            do {
                let file = try OpenFile(path: temporary, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
                try file.write(content, at: 0)
                try file.sync()
            }
            try Files.rename(temporary, to: path)
            try Files.syncDirectory(directory)
        } catch {
            try? Files.removeIfPresent(temporary)
            throw .storeFailure(path: path, reason: ChannelFiles.reasonText(error))
        }
    }

    /// The last verified index and its signature file text, as `keepIndex` left them; nil when none
    /// was ever kept. The bytes are not trusted here: the verifier checks the signature again.
    func keptIndex(maxIndexBytes: Int) throws(ChannelRefusal) -> (index: [UInt8], signature: [UInt8])? {
        let path = keptIndexPath
        guard (try? ChannelFiles.linkStatus(path)) != nil else { return nil }
        let content = try ChannelFiles.readSmallFile(path, limit: Self.keptIndexLimit(maxIndexBytes: maxIndexBytes),
                                                     tooLarge: .storeFailure(path: path, reason: "larger than the index cap"))
        guard let newline = content.firstIndex(of: 0x0A) else {
            throw .storeFailure(path: path, reason: "no signature line")
        }
        return (Array(content[(newline + 1)...]), Array(content[...newline]))
    }

    /// The verified copy of `reference` already in the store (checked by hash, length and mode
    /// again; `installMode` as for `admit`); `display` names the channel file in the refusal when
    /// the copy is missing or damaged.
    func existingCopy(of reference: ChannelIndex.FileReference, installMode: mode_t?, display: String,
                      buffer: UnsafeMutableRawBufferPointer) throws(ChannelRefusal) -> String {
        let target = objectPath(for: reference, installMode: installMode)
        guard existingCopyIsValid(target, reference: reference, mode: installMode ?? Self.patchObjectMode, buffer: buffer) else {
            throw .storeFailure(path: target, reason: "the verified copy of \(display) is missing or damaged")
        }
        return target
    }

    /// Removes the world-readable `objects/` copies older agents made of baseline and fix files
    /// (now kept in `installs/` with their own mode), except those `keeping` (patch objects).
    func removePublicCopies(of references: [ChannelIndex.FileReference], keeping: Set<String>) {
        for reference in references {
            let path = objectPath(for: reference)
            if !keeping.contains(path) { try? Files.removeIfPresent(path) }
        }
    }

    /// True if `path` holds exactly the declared bytes with `mode`, owned by us; any other copy is removed.
    private func existingCopyIsValid(_ path: String, reference: ChannelIndex.FileReference, mode: mode_t,
                                     buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard let file = try? OpenFile(path: path, flags: O_RDONLY | O_NOFOLLOW | O_NONBLOCK) else { return false }
        let valid: Bool
        if let info = try? file.status(), info.st_mode & S_IFMT == S_IFREG, UInt64(info.st_size) == reference.length,
           info.st_mode & 0o7777 == mode, info.st_uid == geteuid(),
           let measured = try? ChannelFiles.measure(file, length: reference.length, buffer: buffer) {
            valid = measured == .complete(sha256: reference.sha256)
        } else {
            valid = false
        }
        if !valid { try? Files.removeIfPresent(path) }
        return valid
    }
}
