/// What a kernel module (`.ko`) says about itself in its `.modinfo` section: NUL-separated
/// `key=value` strings written by `MODULE_INFO` and modpost (`vermagic`, `name`, `livepatch`, …).
public struct KernelModuleInfo: Equatable, Sendable {
    /// Every `key=value` pair in section order (a key may repeat, e.g. `alias`).
    public var fields: [(key: String, value: String)]

    public static func == (lhs: KernelModuleInfo, rhs: KernelModuleInfo) -> Bool {
        lhs.fields.count == rhs.fields.count && zip(lhs.fields, rhs.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// The first value of `key`, if the module has one.
    public func value(_ key: String) -> String? { fields.first { $0.key == key }?.value }

    /// The module's name (`name=`), which is its folder under `/sys/module` and, for a live patch,
    /// under `/sys/kernel/livepatch`.
    public var name: String? { value("name") }

    /// True when `MODULE_INFO(livepatch, "Y")` marks the module as a live patch.
    public var isLivePatch: Bool { value("livepatch") == "Y" }

    /// The kernel release the module was built for: the first word of `vermagic`.
    public var vermagicRelease: String? {
        value("vermagic")?.split(separator: " ", omittingEmptySubsequences: true).first.map(String.init)
    }

    /// The text the kernel's `sign-file` appends after a module's signature; a module ending with
    /// it is signed (whether the kernel trusts the key is decided when it loads).
    public static let signatureMarker: [UInt8] = Array("~Module signature appended~\n".utf8)

    /// True when `tail` (the last bytes of a module file, at least the marker's length) ends with
    /// the appended-signature marker.
    public static func isSigned(tail: [UInt8]) -> Bool {
        tail.count >= signatureMarker.count && Array(tail.suffix(signatureMarker.count)) == signatureMarker
    }

    /// Parses the bytes of a `.modinfo` section; `path` names the module in errors. Strings
    /// without `=` and runs of NUL padding are skipped, as the kernel's own `get_modinfo` does.
    public static func parse(section bytes: ArraySlice<UInt8>, path: String) throws(ArtifactError) -> KernelModuleInfo {
        var fields: [(key: String, value: String)] = []
        for entry in bytes.split(separator: 0, omittingEmptySubsequences: true) {
            guard let equals = entry.firstIndex(of: UInt8(ascii: "=")) else { continue }
            guard let key = String(validating: entry[entry.startIndex..<equals], as: UTF8.self),
                  let value = String(validating: entry[(equals + 1)...], as: UTF8.self) else {
                throw .malformedELF(path: path, reason: ".modinfo holds a string that is not UTF-8")
            }
            fields.append((key, value))
        }
        return KernelModuleInfo(fields: fields)
    }

    /// Reads the `.modinfo` of the kernel module at `path`: refuses a file that is not an ELF
    /// relocatable object of the host architecture, or has no `.modinfo` or
    /// `.gnu.linkonce.this_module` section (the `struct module` every kernel module carries).
    public static func read(path: String) throws(ArtifactError) -> KernelModuleInfo {
        let elf: ELFFile
        do { elf = try ELFFile.load(path: path) } catch let error as ArtifactError { throw error } catch {
            throw .malformedELF(path: path, reason: "\(error)")
        }
        guard elf.fileType == .relocatable else {
            throw .malformedELF(path: path, reason: "is \(elf.fileType), not a kernel module (ET_REL, built by Kbuild)")
        }
        guard elf.section(named: ".gnu.linkonce.this_module") != nil else {
            throw .malformedELF(path: path, reason: "has no .gnu.linkonce.this_module section, so it is not a kernel module (ET_REL, built by Kbuild)")
        }
        guard let section = elf.section(named: ".modinfo") else {
            throw .malformedELF(path: path, reason: "has no .modinfo section, so it is not a kernel module (ET_REL, built by Kbuild)")
        }
        return try parse(section: elf.bytes[elf.contents(of: section)], path: path)
    }
}

/// The running kernel's GNU build-id, from `/sys/kernel/notes` or from its `vmlinux`.
public enum KernelBuildID {
    /// The build-id in `bytes`, which are either an ELF file (a `vmlinux`, whose notes are read) or
    /// a bare sequence of ELF notes with 4-byte alignment, as `/sys/kernel/notes` holds them.
    /// Nil when they hold no `NT_GNU_BUILD_ID`; throws naming `path` when they are malformed.
    public static func find(in bytes: [UInt8], path: String) throws(ArtifactError) -> BuildID? {
        let found: BuildID?
        if bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46]) {
            do { found = try ELFFile(path: path, bytes: bytes).buildID } catch let error as ArtifactError { throw error } catch {
                throw .malformedELF(path: path, reason: "\(error)")
            }
        } else {
            do {
                found = try ELFNotes.buildID(in: bytes, alignment: 4, what: "the note sequence", path: path)
            } catch let error as ArtifactError { throw error } catch {
                throw .malformedELF(path: path, reason: "\(error)")
            }
        }
        return found
    }
}
