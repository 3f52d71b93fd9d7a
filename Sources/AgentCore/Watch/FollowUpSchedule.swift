import LinuxSystem

/// When to look at a process again after a sign that it may just have mapped a targeted object.
/// Signs close together share their looks: a look within `slack` of one already asked for is not
/// added, and looks falling due within `slack` of each other are taken together.
struct FollowUpSchedule {
    /// A sign, and the looks it asks for.
    enum Sign: Sendable {
        /// The process called execve: the dynamic loader maps its libraries next. Looks at once,
        /// 5 ms and 30 ms later (a loader slowed by a busy host is still caught).
        case exec
        /// It opened a targeted file: a loader maps it right after. Looks 5 ms and 30 ms later: one
        /// at once would come before the mapping, or in its middle (glibc maps the whole object,
        /// then maps each segment over it, which would discard a jump written in between).
        case open

        /// The delays after the sign at which the process is looked at.
        var delays: [Duration] {
            switch self {
            case .exec: return [.zero, .milliseconds(5), .milliseconds(30)]
            case .open: return [.milliseconds(5), .milliseconds(30)]
            }
        }
    }

    /// How close two looks at one process must be to count as one.
    static let slack: Duration = .milliseconds(1)

    /// The looks still to come, per process, earliest first.
    private var due: [ProcessID: [ContinuousClock.Instant]] = [:]

    /// Asks for the looks at `pid` that `sign`, seen at `instant`, calls for.
    mutating func note(_ pid: ProcessID, _ sign: Sign, at instant: ContinuousClock.Instant) {
        var looks = due[pid] ?? []
        for delay in sign.delays {
            let look = instant + delay
            guard !looks.contains(where: { magnitude($0 - look) <= Self.slack }) else { continue }
            looks.append(look)
        }
        due[pid] = looks.sorted()
    }

    /// The processes with a look due at `now` (within `slack`), each once; those looks are taken.
    mutating func takeDue(now: ContinuousClock.Instant) -> [ProcessID] {
        var pids: [ProcessID] = []
        for (pid, looks) in due {
            let remaining = looks.filter { $0 > now + Self.slack }
            guard remaining.count < looks.count else { continue }
            pids.append(pid)
            due[pid] = remaining.isEmpty ? nil : remaining
        }
        return pids.sorted()
    }

    /// When the next look falls due, or nil when none is asked for.
    var nextLook: ContinuousClock.Instant? { due.values.compactMap(\.first).min() }
}

/// The length of `duration`, whatever its sign.
private func magnitude(_ duration: Duration) -> Duration { duration < .zero ? .zero - duration : duration }
