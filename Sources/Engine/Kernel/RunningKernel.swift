import Artifact
import LinuxSystem

/// Where the kernel's files are: `/` on a host, a folder a test wrote for parsing tests.
public struct KernelPaths: Hashable, Sendable {
    /// The folder holding `sys/` and `proc/`, normally "/".
    public var root: String

    /// Kernel files under `root`.
    public init(root: String = "/") { self.root = root.hasSuffix("/") ? root : root + "/" }

    /// The path of `relative` (e.g. "sys/kernel/notes") under the root.
    public func path(_ relative: String) -> String { root + relative }

    /// The notes the kernel image carries, among them its build-id.
    public var notes: String { path("sys/kernel/notes") }
    /// The release `uname -r` prints.
    public var osRelease: String { path("proc/sys/kernel/osrelease") }
    /// One folder per loaded live patch.
    public var livePatches: String { path("sys/kernel/livepatch") }
    /// The folder of the live patch `name`.
    public func livePatch(_ name: String) -> String { livePatches + "/" + name }
    /// Every loaded module, one line each; absent when the kernel has no module support.
    public var modules: String { path("proc/modules") }
    /// 1 once module loading has been switched off until the next boot.
    public var modulesDisabled: String { path("proc/sys/kernel/modules_disabled") }
    /// The lockdown modes with the one in force in brackets.
    public var lockdown: String { path("sys/kernel/security/lockdown") }
    /// Y when every module must carry a valid signature (`module.sig_enforce`, `MODULE_SIG_FORCE`).
    public var signatureEnforcement: String { path("sys/module/module/parameters/sig_enforce") }
    /// The kernel's taint mask.
    public var tainted: String { path("proc/sys/kernel/tainted") }
    /// How many oopses the kernel has had since boot (kernels from 6.2 and their stable backports).
    public var oopsCount: String { path("sys/kernel/oops_count") }
    /// The folder of `/proc`.
    public var proc: String { path("proc") }
}

/// Why the running kernel cannot take a live patch module: each case is a named reason the agent
/// reports as "not applicable: …".
public enum KernelUnavailability: Hashable, Sendable, CustomStringConvertible {
    /// The kernel was built without loadable modules (`/proc/modules` is absent).
    case noModuleSupport
    /// The kernel was built without `CONFIG_LIVEPATCH` (`/sys/kernel/livepatch` is absent).
    case noLivePatchSupport
    /// `kernel.modules_disabled` is 1: no module loads until the next boot.
    case moduleLoadingDisabled
    /// The kernel is locked down (`integrity` or `confidentiality`) and the module is not signed.
    case lockdown(mode: String)
    /// The kernel enforces module signatures and the module is not signed.
    case signatureEnforced

    /// "not applicable: " and the reason, for status and journal.
    public var description: String {
        switch self {
        case .noModuleSupport: return "not applicable: the kernel has no loadable module support (/proc/modules is absent)"
        case .noLivePatchSupport: return "not applicable: the kernel has no live patch support (CONFIG_LIVEPATCH; /sys/kernel/livepatch is absent)"
        case .moduleLoadingDisabled: return "not applicable: module loading is disabled until the next boot (kernel.modules_disabled = 1)"
        case let .lockdown(mode): return "not applicable: the kernel is locked down (\(mode)) and the module is not signed"
        case .signatureEnforced: return "not applicable: the kernel enforces module signatures (module.sig_enforce) and the module is not signed"
        }
    }
}

/// The kernel's taint mask (`/proc/sys/kernel/tainted`), with the flags named as in the kernel's
/// documentation (admin-guide/tainted-kernels).
public struct KernelTaint: Hashable, Sendable, CustomStringConvertible {
    /// The bits.
    public var mask: UInt64

    /// Wraps a mask.
    public init(mask: UInt64) { self.mask = mask }

    /// The letters of bits 0-18, as the kernel prints them in an oops.
    static let letters: [Character] = Array("PFSRMBUDAWCIOELKXTN")

    /// The flags loading a live patch module sets by design: out-of-tree (O), unsigned (E) and
    /// live patched (K). Any other new flag after a load is a failure signal.
    public static let expectedFromLivePatch = KernelTaint(mask: 1 << 12 | 1 << 13 | 1 << 15)

    /// The flags set here and not in `earlier`.
    public func added(since earlier: KernelTaint) -> KernelTaint { KernelTaint(mask: mask & ~earlier.mask) }

    /// These flags without `other`'s.
    public func removing(_ other: KernelTaint) -> KernelTaint { KernelTaint(mask: mask & ~other.mask) }

    /// True when no flag is set.
    public var isEmpty: Bool { mask == 0 }

    /// The set flags as letters ("OEK"), or "none"; bits beyond the named ones as `bitN`.
    public var description: String {
        guard mask != 0 else { return "none" }
        var parts: [String] = []
        var named = ""
        for bit in 0..<64 where mask & (1 << UInt64(bit)) != 0 {
            if bit < Self.letters.count { named.append(Self.letters[bit]) } else { parts.append("bit\(bit)") }
        }
        return ([named].filter { !$0.isEmpty } + parts).joined(separator: ",")
    }
}

/// The running kernel as it describes itself: release, build-id, and whether it can take a live
/// patch module. Read from `/proc` and `/sys`, never from saved state.
public struct RunningKernel: Hashable, Sendable {
    /// `uname -r`.
    public var release: String
    /// The GNU build-id of the running image; nil when its notes carry none.
    public var buildID: BuildID?
    /// `/proc/modules` exists.
    public var modulesSupported: Bool
    /// `/sys/kernel/livepatch` exists.
    public var livePatchSupported: Bool
    /// `kernel.modules_disabled` is 1.
    public var modulesDisabled: Bool
    /// The lockdown mode in force when it is not `none` (`integrity`, `confidentiality`).
    public var lockdown: String?
    /// `module.sig_enforce` is Y.
    public var signatureEnforced: Bool

    /// Describes a kernel.
    public init(release: String, buildID: BuildID?, modulesSupported: Bool, livePatchSupported: Bool,
                modulesDisabled: Bool, lockdown: String?, signatureEnforced: Bool) {
        self.release = release
        self.buildID = buildID
        self.modulesSupported = modulesSupported
        self.livePatchSupported = livePatchSupported
        self.modulesDisabled = modulesDisabled
        self.lockdown = lockdown
        self.signatureEnforced = signatureEnforced
    }

    /// Why no live patch module can be loaded, whatever the module; nil when one can be.
    public var unavailability: KernelUnavailability? {
        if !modulesSupported { return .noModuleSupport }
        if !livePatchSupported { return .noLivePatchSupport }
        if modulesDisabled { return .moduleLoadingDisabled }
        return nil
    }

    /// Why this module cannot be loaded; `moduleIsSigned` tells whether it carries an appended
    /// signature (lockdown and signature enforcement refuse only unsigned modules; a signed one is
    /// judged by the kernel's keyring when it loads).
    public func unavailability(moduleIsSigned: Bool) -> KernelUnavailability? {
        if let absolute = unavailability { return absolute }
        guard !moduleIsSigned else { return nil }
        if let lockdown { return .lockdown(mode: lockdown) }
        if signatureEnforced { return .signatureEnforced }
        return nil
    }

    /// Reads the kernel under `paths`. Throws `EngineError` when a file that is present cannot be
    /// read or has an unexpected shape; an absent optional file counts as "feature absent".
    public static func read(_ paths: KernelPaths = KernelPaths()) throws(EngineError) -> RunningKernel {
        let release = try KernelFiles.text(paths.osRelease)
        let notes = try KernelFiles.bytesIfPresent(paths.notes)
        var buildID: BuildID?
        if let notes {
            do { buildID = try KernelBuildID.find(in: notes, path: paths.notes) } catch {
                throw .malformedProcFile(path: paths.notes, reason: "\(error)")
            }
        }
        return RunningKernel(
            release: release, buildID: buildID,
            modulesSupported: try KernelFiles.exists(paths.modules),
            livePatchSupported: try KernelFiles.exists(paths.livePatches),
            modulesDisabled: try KernelFiles.textIfPresent(paths.modulesDisabled) == "1",
            lockdown: try KernelFiles.textIfPresent(paths.lockdown).flatMap(lockdownMode),
            signatureEnforced: try KernelFiles.textIfPresent(paths.signatureEnforcement) == "Y")
    }

    /// The mode in brackets in `/sys/kernel/security/lockdown` ("none [integrity] confidentiality"),
    /// or nil when it is `none` or none is bracketed.
    static func lockdownMode(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return nil }
        let mode = String(text[text.index(after: open)..<close])
        return mode == "none" || mode.isEmpty ? nil : mode
    }

    /// The kernel's taint mask now.
    public static func taint(_ paths: KernelPaths = KernelPaths()) throws(EngineError) -> KernelTaint {
        let text = try KernelFiles.text(paths.tainted)
        guard let mask = UInt64(text) else {
            throw .malformedProcFile(path: paths.tainted, reason: "'\(text)' is not a taint mask")
        }
        return KernelTaint(mask: mask)
    }

    /// How many oopses the kernel has had since boot, where it says (nil on older kernels).
    public static func oopsCount(_ paths: KernelPaths = KernelPaths()) throws(EngineError) -> UInt64? {
        guard let text = try KernelFiles.textIfPresent(paths.oopsCount) else { return nil }
        guard let count = UInt64(text) else {
            throw .malformedProcFile(path: paths.oopsCount, reason: "'\(text)' is not a count")
        }
        return count
    }
}

/// Reading the small text files of `/proc` and `/sys` through the system layer.
enum KernelFiles {
    /// The file's text without its trailing newline.
    static func text(_ path: String) throws(EngineError) -> String {
        do throws(SystemError) { return trimmed(try Files.read(path, limit: 1 << 16)) } catch { throw .system(error) }
    }

    /// The file's text without its trailing newline, or nil when it does not exist.
    static func textIfPresent(_ path: String) throws(EngineError) -> String? {
        do throws(SystemError) { return try Files.readIfPresent(path, limit: 1 << 16).map(trimmed) } catch { throw .system(error) }
    }

    /// The file's bytes, or nil when it does not exist.
    static func bytesIfPresent(_ path: String) throws(EngineError) -> [UInt8]? {
        do throws(SystemError) { return try Files.readIfPresent(path, limit: 1 << 20) } catch { throw .system(error) }
    }

    /// True when something is at `path`.
    static func exists(_ path: String) throws(EngineError) -> Bool {
        do throws(SystemError) { return try Files.linkStatusIfPresent(path) != nil } catch { throw .system(error) }
    }

    static func trimmed(_ bytes: [UInt8]) -> String {
        var end = bytes.count
        while end > 0, bytes[end - 1] == UInt8(ascii: "\n") || bytes[end - 1] == 0 || bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
        return String(decoding: bytes[0..<end], as: UTF8.self)
    }
}
