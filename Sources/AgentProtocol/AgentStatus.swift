import Foundation

/// The host's verdict, by precedence: unenrolled > exposed > reboot-required > hotpatch-pending >
/// up-to-date.
public enum Verdict: String, Codable, Sendable, CaseIterable, Comparable {
    /// Everything the channel offers for the active baseline is applied.
    case upToDate = "up-to-date"
    /// A hotpatch is being applied or retried in some process.
    case hotpatchPending = "hotpatch-pending"
    /// A baseline or fix was installed and waits for a reboot.
    case rebootRequired = "reboot-required"
    /// A matching process cannot be patched, or the channel cannot be verified.
    case exposed
    /// The administrator turned patching off on this host.
    case unenrolled

    /// Higher precedence compares greater.
    public static func < (lhs: Verdict, rhs: Verdict) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The words `agentctl status` shows.
    public var phrase: String {
        switch self {
        case .upToDate: return "up to date"
        case .hotpatchPending: return "hotpatch pending"
        case .rebootRequired: return "reboot required"
        case .exposed: return "exposed"
        case .unenrolled: return "unenrolled"
        }
    }
}

/// The agent's status: the stable schema of `agentctl status --json` (docs/STATUS.md).
public struct AgentStatus: Codable, Sendable, Equatable {
    /// The highest-precedence verdict among `reasons`.
    public var verdict: Verdict
    /// Every reason that holds now, each with the verdict it implies (not only the winning one).
    public var reasons: [Reason]
    /// The baselines: the active one and any installed and awaiting a reboot.
    public var baseline: Baseline
    /// The hotpatch in force for the active baseline (null when none).
    public var hotpatch: HotpatchInForce?
    /// Processes that map a targeted object, by state.
    public var processes: ProcessCounts
    /// Whether a reboot is required, and why.
    public var reboot: Reboot
    /// The channel as last verified.
    public var channel: Channel
    /// Whether this host takes hotpatches.
    public var enrolled: Bool
    /// How new processes are noticed: "netlink" (process events) or "scan" (periodic).
    public var processWatch: String
    /// How a running process that loads a targeted library later is noticed: "fanotify" or "scan" (the next poll).
    public var mappingWatch: String
    /// Whether new processes are patched before their first call (the exec gate), and what it did;
    /// null from an agent without one.
    public var execGate: ExecGateStatus?
    /// The last patch pause measured, in microseconds.
    public var lastPauseUsec: UInt64?
    /// The agent's version.
    public var agentVersion: String
    /// The running kernel and its live patch (null before the agent's first cycle).
    public var kernel: Kernel?
    /// The fixed Debian packages hotpatch releases carry, and whether they are on disk.
    public var fixedPackages: [FixedPackages]

    /// The exec gate: a new process that execs or loads a targeted file is held at its start and
    /// patched before its first call.
    public struct ExecGateStatus: Codable, Sendable, Equatable {
        /// "fanotify" (on) or "off".
        public var mode: String
        /// Why it is off (null when on).
        public var reason: String?
        /// New processes held at their start and patched there.
        public var patched: Int
        /// Held, then let go to the usual path unpatched (the file was only read, not relocated in
        /// time, or the process ended).
        public var letGo: Int
        /// Openers of a targeted file allowed at once without a hold (no gate thread free, traced
        /// already, a second open of a held process, the agent's own reads).
        public var notHeld: Int
        /// Why the last process let go was (null when none was).
        public var lastLetGo: String?

        /// A gate status with these facts.
        public init(mode: String, reason: String?, patched: Int, letGo: Int, notHeld: Int, lastLetGo: String? = nil) {
            self.lastLetGo = lastLetGo
            self.mode = mode
            self.reason = reason
            self.patched = patched
            self.letGo = letGo
            self.notHeld = notHeld
        }
    }

    /// One reason behind the verdict.
    public struct Reason: Codable, Sendable, Equatable {
        /// The verdict this reason implies.
        public var verdict: Verdict
        /// What a person reads.
        public var message: String
        public init(verdict: Verdict, message: String) {
            self.verdict = verdict
            self.message = message
        }
    }

    /// Baselines.
    public struct Baseline: Codable, Sendable, Equatable {
        /// The active baseline's id (null before one is known).
        public var active: String?
        /// Baselines or fixes installed and waiting for a reboot.
        public var pending: [String]
        public init(active: String?, pending: [String] = []) {
            self.active = active
            self.pending = pending
        }
    }

    /// The hotpatch in force.
    public struct HotpatchInForce: Codable, Sendable, Equatable {
        /// Release id.
        public var id: String
        /// Cumulative level.
        public var level: Int
        /// CVE ids it fixes (all levels up to this one).
        public var cves: [String]
        /// Its description.
        public var description: String?
        /// Each object this level fixes and the release whose fix it runs: levels are cumulative
        /// per object, so an object the level does not name keeps an earlier level's fix.
        public var objects: [ObjectFix]
        public init(id: String, level: Int, cves: [String], description: String? = nil, objects: [ObjectFix] = []) {
            self.id = id
            self.level = level
            self.cves = cves
            self.description = description
            self.objects = objects
        }

        /// One object's fix at the level in force.
        public struct ObjectFix: Codable, Sendable, Equatable {
            /// The object's GNU build-id (hex).
            public var buildId: String
            /// Where it usually lives (the publisher's path hint).
            public var path: String
            /// The release whose fix it runs.
            public var hotpatch: String
            /// That release's level.
            public var level: Int

            /// Describes one object's fix.
            public init(buildId: String, path: String, hotpatch: String, level: Int) {
                self.buildId = buildId
                self.path = path
                self.hotpatch = hotpatch
                self.level = level
            }
        }
    }

    /// Process counts.
    public struct ProcessCounts: Codable, Sendable, Equatable {
        public var patched: Int
        public var pending: Int
        public var unpatchable: Int
        /// Processes that map an object the level in force fixes without running its fix: still
        /// running vulnerable code until patched, restarted or gone (`agentctl processes` names them).
        public var vulnerable: Int
        public init(patched: Int = 0, pending: Int = 0, unpatchable: Int = 0, vulnerable: Int = 0) {
            self.patched = patched
            self.pending = pending
            self.unpatchable = unpatchable
            self.vulnerable = vulnerable
        }
    }

    /// Reboot state.
    public struct Reboot: Codable, Sendable, Equatable {
        public var required: Bool
        public var reasons: [String]
        /// The reboot policy: never, request or auto.
        public var policy: String
        public init(required: Bool = false, reasons: [String] = [], policy: String = "request") {
            self.required = required
            self.reasons = reasons
            self.policy = policy
        }
    }

    /// Channel state.
    public struct Channel: Codable, Sendable, Equatable {
        /// The index version last accepted (null before the first).
        public var version: Int?
        /// When the channel was last checked (RFC 3339), null before the first check.
        public var lastCheck: String?
        /// Why the last check failed, or null.
        public var error: String?
        /// Where the channel is.
        public var path: String
        public init(version: Int? = nil, lastCheck: String? = nil, error: String? = nil, path: String = "") {
            self.version = version
            self.lastCheck = lastCheck
            self.error = error
            self.path = path
        }
    }

    /// The running kernel and the state of its live patch (docs/STATUS.md).
    public struct Kernel: Codable, Sendable, Equatable {
        /// What the agent has done with the kernel's live patch.
        public enum State: String, Codable, Sendable, CaseIterable {
            /// No release has a module for this kernel, and none of ours is loaded.
            case none
            /// The fix's live patch is in force (transition complete).
            case applied
            /// A transition is under way (applying, or reverting a stalled patch).
            case inTransition = "in-transition"
            /// Loading or removing failed, or the fix was reverted on a failure signal.
            case failed
            /// A fix exists for this kernel, but this kernel or the agent's unit cannot load it.
            case notApplicable = "not-applicable"
        }

        /// One task that has not switched to the new patch state yet.
        public struct BlockingTask: Codable, Sendable, Equatable {
            public var pid: Int32
            public var tid: Int32
            /// Its command name (`comm`).
            public var comm: String
            /// Describes one blocking task.
            public init(pid: Int32, tid: Int32, comm: String) {
                self.pid = pid
                self.tid = tid
                self.comm = comm
            }
        }

        /// `uname -r`.
        public var release: String
        /// The kernel's GNU build-id (hex), null when /sys/kernel/notes has none.
        public var buildId: String?
        public var state: State
        /// The hotpatch release whose module is in force (or being applied), null when none.
        public var hotpatch: String?
        /// That release's level.
        public var level: Int?
        /// The live patch's name (its folder under /sys/kernel/livepatch).
        public var livepatch: String?
        /// How long the transition has lasted, in seconds, while in transition.
        public var transitionSeconds: Double?
        /// The tasks holding the transition up, while in transition.
        public var blocking: [BlockingTask]
        /// Why it failed or is not applicable.
        public var reason: String?

        /// Describes the kernel's live patch state.
        public init(release: String, buildId: String?, state: State, hotpatch: String? = nil, level: Int? = nil,
                    livepatch: String? = nil, transitionSeconds: Double? = nil, blocking: [BlockingTask] = [], reason: String? = nil) {
            self.release = release
            self.buildId = buildId
            self.state = state
            self.hotpatch = hotpatch
            self.level = level
            self.livepatch = livepatch
            self.transitionSeconds = transitionSeconds
            self.blocking = blocking
            self.reason = reason
        }
    }

    /// The fixed packages one hotpatch release carries (`hotpatch-pack --with-deb`), on disk or not.
    public struct FixedPackages: Codable, Sendable, Equatable {
        /// Where the release's packages stand.
        public enum State: String, Codable, Sendable {
            /// On disk: installed by the agent, or already at the carried version or newer.
            case installed
            /// The release is in force and its packages are not installed yet (the next cycle does).
            case pending
            /// dpkg is installing them now (since `installingSince`).
            case installing
            /// The install failed (see `reason`); retried on a new channel version or after a backoff.
            case failed
        }

        /// One package.
        public struct Package: Codable, Sendable, Equatable {
            public var name: String
            public var architecture: String
            /// The version the release carries.
            public var version: String
            /// `installed` (dpkg installed it), `already-current` (the installed version was this one or newer), or `not-installed` (the host does not have the package: left alone, never added).
            public var action: String
            /// The version installed before (null: it was not installed).
            public var previousVersion: String?

            /// Describes one package.
            public init(name: String, architecture: String, version: String, action: String, previousVersion: String?) {
                self.name = name
                self.architecture = architecture
                self.version = version
                self.action = action
                self.previousVersion = previousVersion
            }
        }

        /// The hotpatch release that carries them.
        public var hotpatch: String
        public var state: State
        /// When they were installed (RFC 3339), null unless `installed`.
        public var installedAt: String?
        /// Why the install failed (dpkg's reason, the attempt and the next one), null unless `failed`.
        public var reason: String?
        /// Each package (empty unless `installed`).
        public var packages: [Package]
        /// When dpkg started installing them (RFC 3339), null unless `installing`.
        public var installingSince: String?

        /// Describes one release's packages.
        public init(hotpatch: String, state: State, installedAt: String?, reason: String?, packages: [Package],
                    installingSince: String? = nil) {
            self.hotpatch = hotpatch
            self.state = state
            self.installedAt = installedAt
            self.reason = reason
            self.packages = packages
            self.installingSince = installingSince
        }
    }

    public init(verdict: Verdict, reasons: [Reason], baseline: Baseline, hotpatch: HotpatchInForce?,
                processes: ProcessCounts, reboot: Reboot, channel: Channel, enrolled: Bool,
                processWatch: String, mappingWatch: String = "scan", execGate: ExecGateStatus? = nil, lastPauseUsec: UInt64?,
                agentVersion: String, kernel: Kernel? = nil, fixedPackages: [FixedPackages] = []) {
        self.verdict = verdict
        self.reasons = reasons
        self.baseline = baseline
        self.hotpatch = hotpatch
        self.processes = processes
        self.reboot = reboot
        self.channel = channel
        self.enrolled = enrolled
        self.processWatch = processWatch
        self.mappingWatch = mappingWatch
        self.execGate = execGate
        self.lastPauseUsec = lastPauseUsec
        self.agentVersion = agentVersion
        self.kernel = kernel
        self.fixedPackages = fixedPackages
    }

    private enum CodingKeys: String, CodingKey {
        case verdict, reasons, baseline, hotpatch, processes, reboot, channel, enrolled, processWatch, mappingWatch, execGate,
             lastPauseUsec, agentVersion, kernel, fixedPackages
    }

    /// Decodes a status; `fixedPackages` and `execGate`, which an older agent does not send, are
    /// then empty and null.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        verdict = try container.decode(Verdict.self, forKey: .verdict)
        reasons = try container.decode([Reason].self, forKey: .reasons)
        baseline = try container.decode(Baseline.self, forKey: .baseline)
        hotpatch = try container.decodeIfPresent(HotpatchInForce.self, forKey: .hotpatch)
        processes = try container.decode(ProcessCounts.self, forKey: .processes)
        reboot = try container.decode(Reboot.self, forKey: .reboot)
        channel = try container.decode(Channel.self, forKey: .channel)
        enrolled = try container.decode(Bool.self, forKey: .enrolled)
        processWatch = try container.decode(String.self, forKey: .processWatch)
        mappingWatch = try container.decode(String.self, forKey: .mappingWatch)
        execGate = try container.decodeIfPresent(ExecGateStatus.self, forKey: .execGate)
        lastPauseUsec = try container.decodeIfPresent(UInt64.self, forKey: .lastPauseUsec)
        agentVersion = try container.decode(String.self, forKey: .agentVersion)
        kernel = try container.decodeIfPresent(Kernel.self, forKey: .kernel)
        fixedPackages = try container.decodeIfPresent([FixedPackages].self, forKey: .fixedPackages) ?? []
    }
}

/// One process that maps a targeted object (`agentctl processes --json`).
public struct ProcessEntry: Codable, Sendable, Equatable {
    /// Process state as the agent sees it.
    public enum State: String, Codable, Sendable {
        case patched, pending, unpatchable, unpatched
    }
    public var pid: Int32
    public var executable: String
    public var state: State
    /// Why it is pending or unpatchable (null otherwise).
    public var reason: String?
    /// The pause of its last patch, in microseconds.
    public var pauseUsec: UInt64?
    /// The hotpatch applied in it, if any.
    public var hotpatch: String?
    /// Each targeted object it maps, and the fix that object runs.
    public var objects: [MappedObject]
    /// The systemd unit it runs in (from its cgroup), null when it has none.
    public var unit: String?
    /// Whether it still runs vulnerable code: it maps an object the level in force fixes and does
    /// not run that fix (it could not be patched). The verdict is `exposed` while such a process lives.
    public var vulnerable: Bool
    public init(pid: Int32, executable: String, state: State, reason: String? = nil, pauseUsec: UInt64? = nil,
                hotpatch: String? = nil, objects: [MappedObject] = [], unit: String? = nil, vulnerable: Bool = false) {
        self.pid = pid
        self.executable = executable
        self.state = state
        self.reason = reason
        self.pauseUsec = pauseUsec
        self.hotpatch = hotpatch
        self.objects = objects
        self.unit = unit
        self.vulnerable = vulnerable
    }

    /// One targeted object a process maps, as read from the process at the last reconcile.
    public struct MappedObject: Codable, Sendable, Equatable {
        /// Its path as the process maps it.
        public var path: String
        /// Its GNU build-id (hex).
        public var buildId: String?
        /// The release whose fix it runs (levels are cumulative per object, so it may be a lower
        /// level than the process's `hotpatch`); null when it runs its own code.
        public var hotpatch: String?
        /// That release's level.
        public var level: Int?
        /// Why this object kept the process from being patched, when it did.
        public var reason: String?
        /// Whether the level in force fixes this object and the process does not run that fix.
        public var vulnerable: Bool

        /// Describes one object.
        public init(path: String, buildId: String? = nil, hotpatch: String? = nil, level: Int? = nil, reason: String? = nil,
                    vulnerable: Bool = false) {
            self.path = path
            self.buildId = buildId
            self.hotpatch = hotpatch
            self.level = level
            self.reason = reason
            self.vulnerable = vulnerable
        }
    }
}

/// One action the agent took (`agentctl history --json`).
public struct HistoryEntry: Codable, Sendable, Equatable {
    /// When (RFC 3339).
    public var time: String
    /// What: applied, reverted, apply-failed, quarantined, baseline-installed, reboot-required,
    /// verification-failed, enrolled, unenrolled, held, released, confirmed-baseline.
    public var event: String
    /// The release it concerns, if any.
    public var release: String?
    /// A person-readable line.
    public var message: String
    public init(time: String, event: String, release: String? = nil, message: String) {
        self.time = time
        self.event = event
        self.release = release
        self.message = message
    }
}
