import AgentProtocol
import Artifact
import Engine
import Foundation

/// Everything the status is made of, gathered by the agent: a value, so the status is a pure
/// function of it.
struct StatusFacts: Sendable {
    /// The saved state (enrollment, baseline, releases waiting, holds, quarantine, failures).
    var state: AgentState
    /// Why the state file could not be read, if it could not.
    var stateProblem: String?
    /// The processes that map a targeted object, in pid order.
    var records: [ProcessRecord]
    /// Matching processes excluded by configuration.
    var excludedCount: Int
    /// The last patch pause measured, in microseconds.
    var lastPause: UInt64?
    /// The verified index in force, if any.
    var channel: VerifiedChannel?
    /// The channel's standing after the last check (nil before the first).
    var standing: ChannelStanding?
    /// When the channel was last checked.
    var lastCheck: Date?
    /// The plan of the last cycle (nil before the first with a channel).
    var plan: ReleasePlan?
    /// The current boot's id (an automatic reboot is asked for once a boot).
    var bootID: String
    /// Why the kernel's fault reports cannot be read, when they were opened and cannot.
    var faultReportsUnavailable: String?
    /// The configuration in force (reboot policy, channel directory).
    var configuration: AgentConfiguration
    /// How new processes are noticed: "netlink" or "scan".
    var processWatch: String
    /// How a running process that maps a target later is noticed: "fanotify" or "scan".
    var mappingWatch: String = "scan"
    /// The exec gate's mode and counts (nil before the process watcher starts it).
    var execGate: AgentStatus.ExecGateStatus? = nil
    /// The agent's version.
    var agentVersion: String
    /// The running kernel's live patch after the last cycle (nil before the first).
    var kernel: AgentStatus.Kernel? = nil
    /// The release whose fixed packages dpkg installs now, and since when.
    var installingPackages: (release: String, since: Date)? = nil
}

/// Builds the agent's status (verdict, reasons, counts) and its one-line summary from the facts.
public enum StatusBuilder {
    /// The status: every reason that holds, the verdict of highest precedence among them.
    static func status(_ facts: StatusFacts) -> AgentStatus {
        let state = facts.state
        let reasons = reasons(facts)
        let verdict = reasons.map(\.verdict).max() ?? .upToDate
        var hotpatch: AgentStatus.HotpatchInForce?
        if let desired = facts.plan?.desired, state.enrolled {
            let releases = facts.channel?.releases ?? []
            let cves = releases.flatMap { release -> [String] in
                if case let .hotpatch(h) = release, h.hotpatch.baseline == desired.baseline, h.hotpatch.level <= desired.level { return h.cves }
                return []
            }
            let description = releases.first { $0.id == desired.id }?.description
            let fixes = facts.plan.map { Array($0.fixes.fixes.values) } ?? []
            let objects = fixes.compactMap { fix -> AgentStatus.HotpatchInForce.ObjectFix? in
                guard let release = fix.release else { return nil }
                return .init(buildId: fix.target.buildID.description, path: fix.target.pathHint, hotpatch: release.id, level: release.level)
            }.sorted { ($0.path, $0.buildId) < ($1.path, $1.buildId) }
            hotpatch = .init(id: desired.id, level: desired.level, cves: Array(Set(cves)).sorted(), description: description,
                             objects: objects)
        }
        let inForce = facts.plan?.fixes ?? .none
        let counts = AgentStatus.ProcessCounts(
            patched: facts.records.filter { $0.state == .patched }.count,
            pending: facts.records.filter { $0.state == .pending }.count,
            unpatchable: facts.records.filter { $0.state == .unpatchable }.count,
            vulnerable: facts.records.filter { !$0.vulnerableObjects(at: inForce).isEmpty }.count)
        return AgentStatus(
            verdict: verdict, reasons: reasons,
            baseline: .init(active: state.activeBaseline, pending: state.pendingReboot.map(\.id)),
            hotpatch: hotpatch, processes: counts,
            reboot: .init(required: !state.pendingReboot.isEmpty, reasons: state.pendingReboot.map(\.reason),
                          policy: facts.configuration.rebootPolicy.rawValue),
            channel: .init(version: facts.channel?.version ?? state.acceptedIndexVersion,
                           lastCheck: facts.lastCheck.map { RFC3339.format($0.timeIntervalSince1970) },
                           error: facts.standing?.error, path: facts.configuration.channelDirectory),
            enrolled: state.enrolled, processWatch: facts.processWatch, mappingWatch: facts.mappingWatch, execGate: facts.execGate,
            lastPauseUsec: facts.lastPause,
            agentVersion: facts.agentVersion, kernel: facts.kernel,
            fixedPackages: CarriedPackageInstallation.status(state: state, plan: facts.plan, channel: facts.channel,
                                                                                 installing: facts.installingPackages))
    }

    /// Every reason that holds, in a fixed order (state, enrollment, channel, processes, releases, notes).
    static func reasons(_ facts: StatusFacts) -> [AgentStatus.Reason] {
        let state = facts.state
        var reasons: [AgentStatus.Reason] = []
        if let stateProblem = facts.stateProblem {
            reasons.append(.init(verdict: .exposed, message: "state file unreadable, nothing is patched until it is repaired: \(stateProblem)"))
        }
        if !state.enrolled {
            reasons.append(.init(verdict: .unenrolled, message: "host is unenrolled: hotpatches are reverted and none is applied (agentctl enroll)"))
        }
        if let channelReason = facts.standing?.reason { reasons.append(channelReason) }
        let fixes = facts.plan?.fixes ?? .none
        for record in facts.records {
            let vulnerable = record.vulnerableObjects(at: fixes)
            // Named with its unit, as `agentctl processes` and the journal name it.
            let stillVulnerable = vulnerable.isEmpty ? ""
                : "; it still runs vulnerable code: \(vulnerable.map(\.path).joined(separator: ", "))"
                    + (record.unit.map { " (unit \($0))" } ?? "")
            switch record.state {
            case .unpatchable:
                reasons.append(.init(verdict: .exposed, message: "PID \(record.identity.pid) (\(record.executable)) cannot be patched: \(record.reason ?? "")" + stillVulnerable))
            case .unpatched where !vulnerable.isEmpty:
                reasons.append(.init(verdict: .exposed, message: "PID \(record.identity.pid) (\(record.executable)) is not patched" + stillVulnerable))
            case .pending:
                reasons.append(.init(verdict: .hotpatchPending, message: "PID \(record.identity.pid) (\(record.executable)): \(record.reason ?? "pending"), retrying"))
            default: break
            }
        }
        if let kernelReason = KernelLivePatching.reason(facts.kernel) { reasons.append(kernelReason) }
        let offered = Set((facts.channel?.hotpatches ?? []).map(\.id))
        for (id, why) in state.quarantined.sorted(by: { $0.key < $1.key }) where offered.contains(id) {
            reasons.append(.init(verdict: .exposed, message: "hotpatch \(id) quarantined (agentctl apply \(id) to retry): \(why)"))
        }
        for (key, why) in state.quarantined.sorted(by: { $0.key < $1.key }) {
            guard let buildID = facts.kernel?.buildId,
                  let id = KernelLivePatching.quarantinedForKernel([key: why], kernel: buildID).first, offered.contains(id) else { continue }
            reasons.append(.init(verdict: .exposed,
                                 message: "kernel live patch of hotpatch \(id) quarantined for this kernel (agentctl apply \(id) to retry): \(why)"))
        }
        for id in state.held.sorted() {
            reasons.append(.init(verdict: .upToDate, message: "hotpatch \(id) held by an administrator (agentctl apply \(id) to lift)"))
        }
        for failed in state.failedInstalls {
            reasons.append(.init(verdict: .exposed,
                                 message: "\(failed.kind) \(failed.id) failed to install (attempt \(failed.attempts), retried on a new channel version or after \(RFC3339.format(failed.retryAfter))): \(failed.reason)"))
        }
        for packages in CarriedPackageInstallation.status(state: state, plan: facts.plan, channel: facts.channel, installing: facts.installingPackages) {
            switch packages.state {
            case .installed: break
            case .pending:
                reasons.append(.init(verdict: .hotpatchPending,
                                     message: "the fixed packages of hotpatch \(packages.hotpatch) are not on disk yet: installed after its processes are patched"))
            case .installing:
                reasons.append(.init(verdict: .hotpatchPending,
                                     message: "the fixed packages of hotpatch \(packages.hotpatch) are being installed on disk (dpkg running since \(packages.installingSince ?? "?"))"))
            case .failed:
                reasons.append(.init(verdict: .hotpatchPending,
                                     message: "the fixed packages of hotpatch \(packages.hotpatch) failed to install (the hotpatch stays applied; new processes load the unfixed file and are patched): \(packages.reason ?? "")"))
            }
        }
        for pending in state.pendingReboot {
            reasons.append(.init(verdict: .rebootRequired, message: "\(pending.id) installed, waiting for a reboot: \(pending.reason)"))
        }
        if !state.pendingReboot.isEmpty, state.autoRebootBootID == facts.bootID {
            reasons.append(.init(verdict: .rebootRequired,
                                 message: "automatic reboot already requested in this boot; the agent asks only once a boot: if the host does not reboot, reboot it by hand"))
        }
        if facts.excludedCount > 0 {
            reasons.append(.init(verdict: .upToDate, message: "\(facts.excludedCount) matching process(es) excluded by configuration"))
        }
        if let why = facts.faultReportsUnavailable {
            reasons.append(.init(verdict: .upToDate,
                                 message: "kernel fault reports unreadable (\(why)): the crash health check counts fault deaths of root-only processes without the kernel's confirmation"))
        }
        return reasons
    }

    /// One line for systemd's STATUS= and the last line of `hotpatch-agent --once`.
    public static func summary(_ status: AgentStatus) -> String {
        var parts = [status.verdict.phrase]
        if let baseline = status.baseline.active { parts.append("baseline \(baseline)") }
        if let hotpatch = status.hotpatch { parts.append("hotpatch \(hotpatch.id) level \(hotpatch.level)") }
        parts.append("\(status.processes.patched) patched, \(status.processes.pending) pending, \(status.processes.unpatchable) unpatchable"
                     + (status.processes.vulnerable > 0 ? ", \(status.processes.vulnerable) still vulnerable" : ""))
        if status.reboot.required { parts.append("reboot required") }
        return parts.joined(separator: "; ")
    }
}
