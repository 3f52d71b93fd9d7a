import Engine
import LinuxSystem

/// The systemd unit a process runs in, read from its cgroup: what an administrator restarts when
/// the agent could not patch it (`systemctl restart UNIT`).
enum SystemdUnit {
    /// The unit named by the text of /proc/PID/cgroup: the last `.service` or `.scope` component of
    /// the unified hierarchy's path (`0::/system.slice/nginx.service` → `nginx.service`; a user's
    /// `…/user@1000.service/app.slice/foo.service` → `foo.service`, the leaf), else of the named
    /// `systemd` hierarchy of a cgroup v1 host; nil when neither names one (no systemd, a container
    /// without it, the root cgroup).
    static func unit(cgroup text: String) -> String? {
        // Each line: hierarchy-ID:controllers:path (cgroups(7)).
        let entries = text.split(separator: "\n").compactMap { line -> (controllers: Substring, path: Substring)? in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return fields.count == 3 ? (fields[1], fields[2]) : nil
        }
        let unified = entries.first { $0.controllers.isEmpty }?.path
        let named = entries.first { $0.controllers.split(separator: ",").contains("name=systemd") }?.path
        for path in [unified, named].compactMap({ $0 }) {
            if let leaf = path.split(separator: "/").last(where: { $0.hasSuffix(".service") || $0.hasSuffix(".scope") }) {
                return String(leaf)
            }
        }
        return nil
    }

    /// The unit of `pid`, or nil when it has none or its cgroup cannot be read (it ended).
    static func unit(of pid: ProcessID) -> String? {
        guard let bytes = try? Files.read("/proc/\(pid.rawValue)/cgroup", limit: 64 << 10) else { return nil }
        return unit(cgroup: String(decoding: bytes, as: UTF8.self))
    }

    /// The command name of `pid` (`comm`, at most 15 bytes), or nil when it cannot be read.
    static func command(of pid: ProcessID) -> String? {
        (try? ProcFS.status(of: pid))?.name
    }
}
