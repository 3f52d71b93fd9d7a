/// A kernel live patch module of a verified hotpatch release, for one exact kernel build: what the
/// Engine loads with `finit_module` when the running kernel has `buildID`.
public struct KernelLivePatch: Hashable, Sendable {
    /// The kernel release (`uname -r`) the module was built for, e.g. `6.1.0-57-amd64`.
    public var kernelRelease: String
    /// The GNU build-id of that kernel (its `vmlinux`, as `/sys/kernel/notes` shows it).
    public var buildID: BuildID
    /// The module's name, which is also its folder under `/sys/kernel/livepatch`.
    public var livepatchName: String
    /// The verified copy of the module in the agent's store: the file the Engine loads.
    public var modulePath: String
    /// The module's SHA-256 as the signed index states it (lowercase hex).
    public var moduleSHA256: String

}

/// The rules for the names a kernel live patch entry carries, shared by the index parser,
/// `hotpatch-pack kernel` and the Engine.
public enum KernelNames {
    /// The longest module name the kernel keeps (`MODULE_NAME_LEN` is 64 minus a pointer, with the NUL).
    public static let maximumModuleNameLength = 55
    /// The longest kernel release `uname` reports (`__NEW_UTS_LEN`).
    public static let maximumReleaseLength = 64

    /// Why `text` cannot be a live patch module's name, or nil when it can. Kbuild writes module
    /// names with `_` for `-` (`KBUILD_MODNAME`), so a name is letters, digits and `_` only.
    public static func problemWithModuleName(_ text: String) -> String? {
        if text.isEmpty { return "is empty" }
        if text.utf8.count > maximumModuleNameLength { return "is longer than \(maximumModuleNameLength) characters, the kernel's limit for a module name" }
        let allowed = text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte == UInt8(ascii: "_")
        }
        return allowed ? nil : "may only hold letters, digits and '_' (the kernel's form of a module name)"
    }

    /// Why `text` cannot be a kernel release as `uname -r` prints it, or nil when it can.
    public static func problemWithRelease(_ text: String) -> String? {
        if text.isEmpty { return "is empty" }
        if text.utf8.count > maximumReleaseLength { return "is longer than \(maximumReleaseLength) characters, the kernel's limit for a release" }
        let printable = text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "/") }
        return printable ? nil : "holds a space, a '/' or a character that is not printable ASCII"
    }
}
