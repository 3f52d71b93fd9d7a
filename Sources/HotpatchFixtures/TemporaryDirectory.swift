import Foundation
import Glibc
import LinuxSystem

/// A fresh directory (mkdtemp) for one test or fixture, removed with everything in it by `remove()`
/// or when released. It is mode 0755, so a program run as another user (uid 65534 in the tests)
/// reaches what is inside; and it sits under /tmp when `TMPDIR` is long, so a Unix socket inside
/// stays within the 107-byte path limit.
public final class TemporaryDirectory: @unchecked Sendable {
    /// Its absolute path.
    public let path: String

    /// Creates `<temporary folder>/PREFIX.XXXXXX`.
    public init(prefix: String = "hotpatch-test") throws {
        path = try Self.create(prefix: prefix)
    }

    /// Creates `<temporary folder>/PREFIX.XXXXXX` (mode 0755) and returns its path; the caller
    /// removes it (for a directory that outlives this object, like the demo's with --keep).
    public static func create(prefix: String) throws -> String {
        var base = NSTemporaryDirectory()
        if base.utf8.count > 40 { base = "/tmp/" }
        if !base.hasSuffix("/") { base += "/" }
        var template = Array((base + prefix + ".XXXXXX").utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FixtureError.setUp(SystemError(call: "mkdtemp", errno: errno, subject: "\(base)\(prefix).XXXXXX").description)
        }
        let path = String(cString: created)
        chmod(path, 0o755)
        return path
    }

    deinit { remove() }

    /// Removes the directory and everything in it (again harmless).
    public func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// The path of `name` inside it.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` inside the directory (creating folders on the way, mode 0644) and
    /// returns its path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        try write(name, bytes: Array(text.utf8))
    }

    /// Writes `bytes` to `name` inside the directory (creating folders on the way, mode 0644) and
    /// returns its path.
    @discardableResult
    public func write(_ name: String, bytes: [UInt8]) throws -> String {
        let target = file(name)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        // O_CLOEXEC (OpenFile always adds it): a test that runs this file as a program (a fake
        // systemctl or dpkg) would get ETXTBSY if a child spawned at the same moment by another
        // test inherited our descriptor.
        do throws(SystemError) {
            let file = try OpenFile(path: target, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
            try file.write(bytes)
        } catch {
            throw FixtureError.setUp(error.description)
        }
        return target
    }

    /// The text of `name` inside the directory.
    public func read(_ name: String) throws -> String {
        try String(contentsOfFile: file(name), encoding: .utf8)
    }
}
