import LinuxSystem

/// When to look at a process again after a sign that it may just have mapped a targeted object.
/// Signs close together share their looks: a look within `slack` of one already asked for is not
/// added, and looks falling due within `slack` of each other are taken together.
///
/// A process that keeps giving signs (a local user's program opening a targeted library thousands
/// of times a second, or exec'ing in a loop) is looked at by this schedule's pace, not by its own:
/// each process has `burst` signs at once and then one each `signSpacing` (a token bucket). A sign
/// beyond that is not dropped but deferred to the moment the next one is allowed, and every sign
/// until then is covered by it, so each sign still gets every look it asks for, less than
/// `signSpacing` late. A storm of any rate thus costs each process at most
/// `burst` + T / `signSpacing` counted signs in T, about one look per `signSpacing`.
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
    /// How many signs of one process are counted at once, before the pace applies.
    static let burst = 3
    /// The pace at which one process's signs are counted beyond the burst. Shorter than the last
    /// look's delay, so a process's pace is forgotten only once it would be fully regained.
    static let signSpacing: Duration = .milliseconds(25)

    /// The looks still to come, per process, earliest first.
    private var due: [ProcessID: [ContinuousClock.Instant]] = [:]
    /// Per process that gave signs lately: when its pace allows the next sign in full (the
    /// bucket's "theoretical arrival time"), and the latest sign counted (signs up to it are covered).
    private var pace: [ProcessID: (full: ContinuousClock.Instant, latest: ContinuousClock.Instant)] = [:]

    /// Asks for the looks at `pid` that `sign`, seen at `instant`, calls for (at once, or at the
    /// moment its pace allows).
    mutating func note(_ pid: ProcessID, _ sign: Sign, at instant: ContinuousClock.Instant) {
        let counted: ContinuousClock.Instant
        if let known = pace[pid] {
            // An earlier sign counted at or after this one has looks after it already.
            guard instant > known.latest else { return }
            counted = max(instant, known.full - Self.signSpacing * (Self.burst - 1))
            pace[pid] = (max(known.full, counted) + Self.signSpacing, counted)
        } else {
            counted = instant
            pace[pid] = (instant + Self.signSpacing, instant)
        }
        var looks = due[pid] ?? []
        for delay in sign.delays {
            let look = counted + delay
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
        // A process with no look to come and its pace regained is as new: forget it.
        pace = pace.filter { due[$0.key] != nil || $0.value.full > now }
        return pids.sorted()
    }

    /// When the next look falls due, or nil when none is asked for.
    var nextLook: ContinuousClock.Instant? { due.values.compactMap(\.first).min() }

    /// How many processes the schedule holds anything for (looks to come, or a pace not regained).
    var trackedCount: Int { Set(due.keys).union(pace.keys).count }
}

/// The length of `duration`, whatever its sign.
private func magnitude(_ duration: Duration) -> Duration { duration < .zero ? .zero - duration : duration }
