import AgentProtocol
import Artifact

/// A baseline or fix installed and waiting for a reboot.
public struct PendingRelease: Codable, Sendable, Equatable {
    /// The release id.
    public var id: String
    /// "baseline" or "fix".
    public var kind: String
    /// Why a reboot is needed, as status and the reboot-required file say it.
    public var reason: String
    /// When it was installed (RFC 3339).
    public var installedAt: String
    /// The boot during which it was installed: a different boot id now means the reboot happened.
    public var bootID: String

    /// A pending release.
    public init(id: String, kind: String, reason: String, installedAt: String, bootID: String) {
        self.id = id
        self.kind = kind
        self.reason = reason
        self.installedAt = installedAt
        self.bootID = bootID
    }
}

/// A baseline or fix whose install failed: a security update that did not land. Status reports it
/// (verdict `exposed`) until it installs or the channel no longer asks for it. It is tried again when
/// the channel publishes a new index version, or once its backoff has passed (15 min, doubling up
/// to a day), never on every poll.
public struct FailedInstall: Codable, Sendable, Equatable {
    /// The release id.
    public var id: String
    /// "baseline" or "fix".
    public var kind: String
    /// The installer's error, with the path or package it concerned and what was rolled back.
    public var reason: String
    /// When the last attempt failed (RFC 3339).
    public var failedAt: String
    /// How many attempts failed in a row.
    public var attempts: Int
    /// The channel index version of the last attempt.
    public var channelVersion: Int
    /// Seconds since the epoch after which it is tried again even without a new index version.
    public var retryAfter: Double

    /// The first retry waits this long; each further failure doubles it, up to `longestBackoff`.
    public static let firstBackoff = 15.0 * 60
    /// The longest wait between two attempts.
    public static let longestBackoff = 24.0 * 3600

    /// The failure of attempt `attempts` at `now` (seconds since the epoch), with its backoff set.
    public init(id: String, kind: String, reason: String, now: Double, attempts: Int, channelVersion: Int) {
        self.id = id
        self.kind = kind
        self.reason = reason
        self.failedAt = RFC3339.format(now)
        self.attempts = attempts
        self.channelVersion = channelVersion
        self.retryAfter = now + Self.backoff(afterAttempts: attempts)
    }

    /// How long to wait after `attempts` failed attempts in a row.
    public static func backoff(afterAttempts attempts: Int) -> Double {
        min(longestBackoff, firstBackoff * Double(1 << min(max(attempts - 1, 0), 20)))
    }

    /// Whether to try again now: the channel changed since the last attempt, or the backoff passed.
    public func isDue(channelVersion: Int, now: Double) -> Bool {
        channelVersion != self.channelVersion || now >= retryAfter
    }
}

/// One Debian package a hotpatch release carries, as the agent found it and left it on disk.
public struct CarriedPackageState: Codable, Sendable, Equatable {
    /// What the agent did with it.
    public enum Action: String, Codable, Sendable {
        /// dpkg installed the carried version.
        case installed
        /// The installed version was already this one or newer (`dpkg --compare-versions`): left alone.
        case alreadyCurrent = "already-current"
        /// The package was not installed on this host: left alone, as `apt-get --only-upgrade`
        /// would (a release carrying a library and its `-dev` package must not add either).
        case notInstalled = "not-installed"
    }
    /// `Package:`.
    public var name: String
    /// `Architecture:`.
    public var architecture: String
    /// The version the release carries.
    public var version: String
    public var action: Action
    /// The version installed before the agent looked (nil: the package was not installed).
    public var previousVersion: String?

    /// Describes one package.
    public init(name: String, architecture: String, version: String, action: Action, previousVersion: String?) {
        self.name = name
        self.architecture = architecture
        self.version = version
        self.action = action
        self.previousVersion = previousVersion
    }
}

/// The fixed packages of one hotpatch release, brought to the disk once its processes were
/// patched: installed (once; never again for this release), or failed and retried with a backoff.
public struct CarriedInstall: Codable, Sendable, Equatable {
    /// The hotpatch release.
    public var release: String
    /// Each package and what was done with it (empty while the install fails).
    public var packages: [CarriedPackageState]
    /// When they were installed (RFC 3339); nil while the install fails.
    public var installedAt: String?
    /// The last failure (kind "hotpatch"), while the install fails.
    public var failure: FailedInstall?

    /// Describes one release's packages on disk.
    public init(release: String, packages: [CarriedPackageState], installedAt: String?, failure: FailedInstall?) {
        self.release = release
        self.packages = packages
        self.installedAt = installedAt
        self.failure = failure
    }

    /// Whether the packages are on disk (installed now, or found current).
    public var isInstalled: Bool { installedAt != nil && failure == nil }
}

/// What the agent must remember across restarts and reboots. What is applied is never stored: it is
/// re-read from the processes, so losing the agent at any moment loses nothing.
public struct AgentState: Codable, Sendable, Equatable {
    /// The format this agent writes; a file with a higher one is refused, never misread.
    public static let currentFormatVersion = 1
    /// How many history entries are kept (the newest).
    public static let historyLimit = 500

    /// The file's format version.
    public var formatVersion = AgentState.currentFormatVersion
    /// Rollback protection: the highest channel index version accepted.
    public var acceptedIndexVersion: Int?
    /// The active baseline's id.
    public var activeBaseline: String?
    /// The boot id when the state was last saved.
    public var bootID: String?
    /// Baselines and fixes installed and awaiting a reboot.
    public var pendingReboot: [PendingRelease] = []
    /// Baselines and fixes installed, so none is installed twice.
    public var installedReleases: [String] = []
    /// Baselines and fixes whose install failed, oldest first; status reports each until it lands.
    public var failedInstalls: [FailedInstall] = []
    /// Hotpatch release id → why it is quarantined (not retried until a newer level or `apply`).
    public var quarantined: [String: String] = [:]
    /// Hotpatch release ids an administrator reverted; not re-applied until `apply`.
    public var held: [String] = []
    /// Whether the host takes hotpatches.
    public var enrolled = true
    /// The newest actions, oldest first, at most `historyLimit`.
    public var history: [HistoryEntry] = []
    /// The boot id in which the agent last ran `systemctl reboot` (reboot = "auto"): at most one
    /// automatic reboot per boot, so a host that does not reboot, or a boot id the agent cannot see
    /// change, never becomes a reboot loop.
    public var autoRebootBootID: String?
    /// The fixed packages hotpatch releases carried, by release in the order first tried: what was
    /// installed (so a restart or a re-scan never installs a release's packages again) or why not.
    public var carriedInstalls: [CarriedInstall] = []

    /// A fresh state, as on a host the agent has never run on.
    public init() {}

    /// Appends `entry`, dropping the oldest entries beyond `historyLimit`.
    public mutating func record(_ entry: HistoryEntry) {
        history.append(entry)
        if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
    }

    private enum CodingKeys: String, CodingKey {
        case formatVersion, acceptedIndexVersion, activeBaseline, bootID, pendingReboot, installedReleases, failedInstalls,
             quarantined, held, enrolled, history, autoRebootBootID, carriedInstalls
    }

    /// Decodes a state file; fields a future version adds are ignored, fields an older one lacks take
    /// their defaults, so the format can grow without a version bump.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try container.decode(Int.self, forKey: .formatVersion)
        acceptedIndexVersion = try container.decodeIfPresent(Int.self, forKey: .acceptedIndexVersion)
        activeBaseline = try container.decodeIfPresent(String.self, forKey: .activeBaseline)
        bootID = try container.decodeIfPresent(String.self, forKey: .bootID)
        pendingReboot = try container.decodeIfPresent([PendingRelease].self, forKey: .pendingReboot) ?? []
        installedReleases = try container.decodeIfPresent([String].self, forKey: .installedReleases) ?? []
        failedInstalls = try container.decodeIfPresent([FailedInstall].self, forKey: .failedInstalls) ?? []
        quarantined = try container.decodeIfPresent([String: String].self, forKey: .quarantined) ?? [:]
        held = try container.decodeIfPresent([String].self, forKey: .held) ?? []
        enrolled = try container.decodeIfPresent(Bool.self, forKey: .enrolled) ?? true
        history = try container.decodeIfPresent([HistoryEntry].self, forKey: .history) ?? []
        autoRebootBootID = try container.decodeIfPresent(String.self, forKey: .autoRebootBootID)
        carriedInstalls = try container.decodeIfPresent([CarriedInstall].self, forKey: .carriedInstalls) ?? []
    }
}
