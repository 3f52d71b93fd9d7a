import Engine
import LinuxSystem

/// The systemd unit a process runs in, read from its cgroup: what an administrator restarts when
/// the agent could not patch it (`systemctl restart UNIT`, for a system service).
enum SystemdUnit {
    /// The unit named by the text of /proc/PID/cgroup, in the unified hierarchy's path, else in the
    /// named `systemd` hierarchy of a cgroup v1 host: the first component that is not a `.slice`,
    /// when it is a `.service` or `.scope` (`0::/system.slice/nginx.service` → `nginx.service`).
    /// Only slices nest units: whatever lies below a unit's cgroup was delegated (to a container,
    /// to a user), and its names are chosen by whoever holds the delegation, so they never name a
    /// system unit. Below `user@UID.service` (the user's own manager) the user's unit is reported
    /// with its owner: `…/user@1000.service/app.slice/sshd.service` → `sshd.service (user 1000)`.
    /// Nil when no unit is named (no systemd, a container without it, the root cgroup).
    static func unit(cgroup text: String) -> String? {
        // Each line: hierarchy-ID:controllers:path (cgroups(7)).
        let entries = text.split(separator: "\n").compactMap { line -> (controllers: Substring, path: Substring)? in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            return fields.count == 3 ? (fields[1], fields[2]) : nil
        }
        let unified = entries.first { $0.controllers.isEmpty }?.path
        let named = entries.first { $0.controllers.split(separator: ",").contains("name=systemd") }?.path
        for path in [unified, named].compactMap({ $0 }) {
            let components = path.split(separator: "/")
            guard let index = firstUnit(components[...]) else { continue }
            let system = components[index]
            guard let owner = userManagerOwner(system) else { return String(system) }
            guard let inner = firstUnit(components[(index + 1)...]) else { return String(system) }
            return "\(components[inner]) (user \(owner))"
        }
        return nil
    }

    /// The index of the first component after the slices, when it names a service or scope.
    private static func firstUnit(_ components: ArraySlice<Substring>) -> Int? {
        guard let index = components.firstIndex(where: { !$0.hasSuffix(".slice") }) else { return nil }
        let component = components[index]
        return component.hasSuffix(".service") || component.hasSuffix(".scope") ? index : nil
    }

    /// The uid of a user's service manager unit (`user@1000.service` → 1000), else nil.
    private static func userManagerOwner(_ component: Substring) -> UInt32? {
        guard component.hasPrefix("user@"), component.hasSuffix(".service") else { return nil }
        return UInt32(component.dropFirst("user@".count).dropLast(".service".count))
    }

    /// The unit of the process `identity` names, or nil when it has none or is gone (its pid now
    /// another process's, whose unit this must not report).
    static func unit(of identity: ProcessIdentity) -> String? {
        ProcessDirectory.identified(identity).flatMap { ProcFS.cgroup(of: $0) }.flatMap(unit(cgroup:))
    }

    /// The command name of `pid` (`comm`, at most 15 bytes), or nil when it cannot be read.
    static func command(of pid: ProcessID) -> String? {
        (try? ProcFS.status(of: pid))?.name
    }
}
