/// The one table of exit statuses shared by `agentctl` and `hotpatch-agent --once` (sysexits.h
/// where one fits). docs/STATUS.md documents it and declares it stable: monitoring keys on it.
public enum ExitStatus: Sendable, CaseIterable {
    /// 0: the request was carried out; with a verdict, the host is up to date.
    case ok
    /// 1: the verdict is hotpatch-pending (some process was still busy when the answer was given).
    case hotpatchPending
    /// 1: the agent answered but refused the request for another reason than permission.
    case refused
    /// 2: the verdict is reboot-required.
    case rebootRequired
    /// 3: the verdict is exposed (a process cannot be patched, the channel cannot be verified, a
    /// baseline or fix failed to install).
    case exposed
    /// 4: the verdict is unenrolled (the administrator turned patching off on this host).
    case unenrolled
    /// 64 (EX_USAGE): a bad option or option value; nothing was done.
    case usage
    /// 69 (EX_UNAVAILABLE): the agent cannot be reached.
    case unavailable
    /// 75 (EX_TEMPFAIL): the agent is busy; nothing was done; try again later.
    case busy
    /// 76 (EX_PROTOCOL): the agent's answer cannot be read.
    case protocolError
    /// 77 (EX_NOPERM): refused for lack of permission.
    case noPermission
    /// 78 (EX_CONFIG): the configuration was refused.
    case configuration

    /// The status the process exits with.
    public var code: Int32 {
        switch self {
        case .ok: return 0
        case .hotpatchPending, .refused: return 1
        case .rebootRequired: return 2
        case .exposed: return 3
        case .unenrolled: return 4
        case .usage: return 64
        case .unavailable: return 69
        case .busy: return 75
        case .protocolError: return 76
        case .noPermission: return 77
        case .configuration: return 78
        }
    }

    /// Its name in the table of docs/STATUS.md ("Exit statuses") and in `--help`: a verdict's own
    /// name, else a short word.
    public var name: String {
        switch self {
        case .ok: return "ok"
        case .hotpatchPending: return Verdict.hotpatchPending.rawValue
        case .refused: return "refused"
        case .rebootRequired: return Verdict.rebootRequired.rawValue
        case .exposed: return Verdict.exposed.rawValue
        case .unenrolled: return Verdict.unenrolled.rawValue
        case .usage: return "usage"
        case .unavailable: return "unavailable"
        case .busy: return "busy"
        case .protocolError: return "protocol-error"
        case .noPermission: return "no-permission"
        case .configuration: return "configuration"
        }
    }

    /// "CODE NAME, …" for `statuses`, for `--help` (the meanings stay in docs/STATUS.md alone).
    public static func summary(_ statuses: [ExitStatus]) -> String {
        statuses.map { "\($0.code) \($0.name)" }.joined(separator: ", ")
    }

    /// "0 up-to-date, 1 hotpatch-pending, …": the status of each verdict, for `--help`.
    public static var verdictSummary: String {
        Verdict.allCases.map { "\($0.exitCode) \($0.rawValue)" }.joined(separator: ", ")
    }

    /// Where the meanings are documented, for `--help`.
    public static let documentation = "docs/STATUS.md, \"Exit statuses\"; agentctl(8), EXIT STATUS"

    /// The status that reports `verdict` (`agentctl status --exit-code`, `hotpatch-agent --once`).
    public init(verdict: Verdict) {
        switch verdict {
        case .upToDate: self = .ok
        case .hotpatchPending: self = .hotpatchPending
        case .rebootRequired: self = .rebootRequired
        case .exposed: self = .exposed
        case .unenrolled: self = .unenrolled
        }
    }
}

extension Verdict {
    /// The exit status that reports this verdict (docs/STATUS.md).
    public var exitCode: Int32 { ExitStatus(verdict: self).code }
}
