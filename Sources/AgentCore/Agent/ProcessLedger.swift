import AgentProtocol
import Artifact
import Engine
import Foundation
import LinuxSystem

/// What the agent knows of every process that maps a targeted object, and how each patch report
/// changes it: the record transitions and the events to log. No I/O; what needs the process
/// itself (its credentials, its maps) is returned as a follow-up for the caller to do.
struct ProcessLedger: Sendable {
    /// Every matching process not excluded, by pid.
    private(set) var records: [ProcessID: ProcessRecord] = [:]
    /// Matching processes excluded by configuration, by pid.
    private(set) var excluded: Set<ProcessID> = []
    /// The last patch pause measured, in microseconds.
    private(set) var lastPause: UInt64?
    /// The records changed since `vulnerableNotices` last looked, and the level it looked at: an
    /// exec on a busy host reconciles one new pid, and looking again at 500 unchanged records for
    /// each made most of the idle agent's CPU (issue 13).
    private var changedSinceNotices: Set<ProcessID> = []
    private var noticedAt: DesiredFixes?

    /// What the caller must do about one process after its report.
    enum FollowUp: Equatable, Sendable {
        /// Just patched: read what the health check needs (credentials, where the code lies).
        case notePatched
        /// Patched within the health window: read its credentials again (it may have dropped root).
        case observeCredentials
    }

    /// One report's change: the event to log, if any, and what else to do with the process and
    /// the targeted objects it maps (one transition a process, whatever number of objects).
    struct Transition: Sendable {
        var match: ProcessMatch
        var event: AgentEvent?
        var followUp: FollowUp?
        /// Where each object's patch image lies, as the patcher placed it (by build-id).
        var images: [BuildID: Range<UInt64>] = [:]

        /// The process.
        var pid: ProcessID { match.process.pid }
    }

    /// The records in pid order.
    var sorted: [ProcessRecord] { records.values.sorted { $0.identity.pid < $1.identity.pid } }

    /// Whether some process waits for a retry (busy).
    var hasPending: Bool { records.values.contains { $0.state == .pending } }

    /// Forgets every process (the channel has no hotpatch any more).
    mutating func forgetAll() {
        records = [:]
        excluded = []
        changedSinceNotices = []
    }

    /// Forgets a process that ended; returns its record, if it had one.
    mutating func remove(_ pid: ProcessID) -> ProcessRecord? {
        excluded.remove(pid)
        return records.removeValue(forKey: pid)
    }

    /// Changes the record of `pid`, if there is one.
    mutating func update(_ pid: ProcessID, _ change: (inout ProcessRecord) -> Void) {
        guard var record = records[pid] else { return }
        change(&record)
        records[pid] = record
        changedSinceNotices.insert(pid)
    }

    /// Takes the reports of one pass. A full pass (`fullPass`) is the whole truth: processes it did
    /// not find are forgotten. `desired` is the hotpatch the pass aimed at; `healthWindow` (seconds)
    /// decides which patched processes are looked at again.
    mutating func take(_ reports: [HostProcessReport], fullPass: Bool, desired: Hotpatch?, healthWindow: Double,
                       now: Date) -> [Transition] {
        if fullPass {
            let seen = Set(reports.map(\.match.process.pid))
            records = records.filter { seen.contains($0.key) }
            excluded = []
        }
        var transitions: [Transition] = []
        for report in reports {
            let pid = report.match.process.pid
            switch report.result {
            case let .excluded(exclusion):
                records[pid] = nil
                if exclusion.isConfigured { excluded.insert(pid) } else { excluded.remove(pid) }
            case let .reconciled(patch):
                excluded.remove(pid)
                if let transition = take(patch, match: report.match, executable: report.executable, desired: desired,
                                         healthWindow: healthWindow, now: now) {
                    transitions.append(transition)
                }
            }
        }
        return transitions
    }

    private mutating func take(_ report: ProcessPatchReport, match: ProcessMatch, executable: String, desired: Hotpatch?,
                               healthWindow: Double, now: Date) -> Transition? {
        let pid = match.process.pid
        var record = records[pid].flatMap { $0.identity == match.process ? $0 : nil }
            ?? ProcessRecord(identity: match.process, executable: executable, state: .unpatched)
        record.objects = Self.objects(report.objects, before: record.objects)
        var metadata = ["target.pid": "\(pid)", "target.exe": executable,
                        "build.id": match.objects.compactMap { $0.buildID?.description }.joined(separator: " ")]
        if let desired {
            metadata["hotpatch.id"] = desired.id
            metadata["baseline.id"] = desired.baseline
        }
        // Object by object, when that says more than the process's level: several objects, or an
        // object whose fix comes from another level (levels are cumulative per object).
        var objectsText = ""
        if record.objects.count > 1 || record.objects.contains(where: { $0.release != nil && $0.release?.id != desired?.id }) {
            let summary = Self.summary(record.objects)
            metadata["hotpatch.objects"] = summary
            objectsText = " [\(summary)]"
        }
        if let pause = report.pauseMicroseconds {
            metadata["pause.usec"] = "\(pause)"
            lastPause = pause
            record.pauseUsec = pause
        }
        // Mapping the patch object holds every thread too (so no filter can appear mid-load): once
        // per process and patch object, reported apart from the redirect's pause (when the load's
        // hold goes on into the redirect, the one stop lasted their sum).
        var loadPause = ""
        if let load = report.loadPauseMicroseconds {
            metadata["load.pause.usec"] = "\(load)"
            loadPause = ", load pause \(load) µs"
        }
        var transition = Transition(match: match)
        for object in report.objects {
            if let buildID = object.buildID, let image = object.image { transition.images[buildID] = image }
        }
        switch report.outcome {
        case .applied:
            record.state = .patched
            record.reason = nil
            record.hotpatch = desired?.id
            record.patchedAt = now
            transition.followUp = .notePatched
            transition.event = .recorded(
                .applied, release: desired?.id,
                "Applied hotpatch \(desired?.id ?? "?") to PID \(pid) (\(executable))\(objectsText), pause \(report.pauseMicroseconds ?? 0) µs\(loadPause)",
                level: .info, metadata: metadata)
        case .alreadyApplied:
            record.state = .patched
            record.reason = nil
            record.hotpatch = desired?.id
            // A process may drop root after it was patched: look again at every pass of its window.
            if let patchedAt = record.patchedAt, now.timeIntervalSince(patchedAt) <= healthWindow {
                transition.followUp = .observeCredentials
            }
        case .reverted:
            record.state = .unpatched
            record.reason = nil
            record.hotpatch = nil
            transition.event = .recorded(.reverted, release: nil, "Reverted our hotpatch in PID \(pid) (\(executable))\(objectsText)",
                                         level: .info, metadata: metadata)
        case .notApplied:
            record.state = .unpatched
            record.hotpatch = nil
            record.reason = nil
        case let .busy(reason):
            record.state = .pending
            record.reason = match.objects.count > 1 ? report.refusingObject.map { "\($0.path): \(reason)" } ?? reason : reason
            transition.event = .logged(nil, "PID \(pid) busy, will retry: \(reason)", level: .debug, metadata: metadata)
        case .unpatchable(.processGone):
            records[pid] = nil
            return nil
        case let .unpatchable(reason):
            // With several objects, say which one refused (nothing was written to any of them).
            let why = match.objects.count > 1 ? report.refusingObject.map { "\($0.path): \(reason)" } ?? "\(reason)" : "\(reason)"
            let changed = record.state != .unpatchable || record.reason != why
            record.state = .unpatchable
            record.reason = why
            record.hotpatch = nil
            if changed {
                metadata["reason"] = why
                transition.event = .recorded(.processUnpatchable, release: desired?.id,
                                             "PID \(pid) (\(executable)) cannot be patched: \(why)", level: .warning,
                                             metadata: metadata)
            }
        }
        records[pid] = record
        changedSinceNotices.insert(pid)
        return transition.event == nil && transition.followUp == nil ? nil : transition
    }

    /// Names every record not described yet with its command name, read through `command`, which
    /// does the I/O; once per process. A unit comes with it when the scan read the process's cgroup
    /// (`cgroups`, for a unit exclusion); else `readUnits` reads it when it is shown.
    mutating func describeNew(cgroups: [ProcessID: String] = [:], command: (ProcessID) -> String?) {
        // Only a record taken since the last notices can be new (records are made only by `take`).
        for pid in changedSinceNotices where records[pid]?.described == false {
            records[pid]?.command = command(pid)
            records[pid]?.described = true
            if let cgroup = cgroups[pid] {
                records[pid]?.unit = SystemdUnit.unit(cgroup: cgroup)
                records[pid]?.unitRead = true
            }
        }
    }

    /// Reads, through `unit` (which does the I/O), the systemd unit of every record `shown`
    /// selects whose unit was not read yet; once per process.
    mutating func readUnits(of shown: (ProcessRecord) -> Bool, unit: (ProcessIdentity) -> String?) {
        let unread = records.values.filter { !$0.unitRead && shown($0) }.map(\.identity)
        for identity in unread {
            records[identity.pid]?.unit = unit(identity)
            records[identity.pid]?.unitRead = true
        }
    }

    /// One `process-vulnerable` line for each process that runs vulnerable code at `fixes` (the
    /// level in force: it maps an object the level fixes and could not be patched) and was not
    /// named with this release and reason before; a process that no longer runs any is forgotten,
    /// so it is named again if it falls back. In pid order. Looks only at the records changed since
    /// the last call, unless `fixes` differs from that call's.
    mutating func vulnerableNotices(at fixes: DesiredFixes) -> [AgentEvent] {
        var events: [AgentEvent] = []
        let looked = noticedAt == fixes ? changedSinceNotices : Set(records.keys)
        noticedAt = fixes
        changedSinceNotices = []
        for pid in looked.sorted(by: { $0.rawValue < $1.rawValue }) {
            guard let record = records[pid] else { continue }
            let objects = record.vulnerableObjects(at: fixes)
            guard let release = fixes.release, !objects.isEmpty else {
                records[pid]?.vulnerableNotice = nil
                continue
            }
            let reason = record.reason ?? (record.state == .unpatched ? "not patched" : "\(record.state.rawValue)")
            let notice = release.id + "\u{0}" + reason
            guard record.vulnerableNotice != notice else { continue }
            records[pid]?.vulnerableNotice = notice
            let paths = objects.map(\.path).joined(separator: ", ")
            let command = record.command ?? Files.baseName(record.executable)
            let placement = record.unit.map { "unit \($0)" } ?? "no systemd unit"
            let restart = ControlText.restartAdvice(unit: record.unit)
            var metadata = ["target.pid": "\(pid)", "target.exe": record.executable, "target.comm": command,
                            "target.objects": paths, "build.id": objects.compactMap { $0.buildID?.description }.joined(separator: " "),
                            "hotpatch.id": release.id, "baseline.id": release.baseline, "reason": reason]
            if let unit = record.unit { metadata["target.unit"] = unit }
            events.append(.logged(
                .processVulnerable,
                "PID \(pid) (\(command), \(placement)) still runs vulnerable code: \(paths) without the fix of hotpatch \(release.id) (\(reason)); it stays exposed until it is patched, restarted (\(restart)) or gone",
                level: .warning, metadata: metadata))
        }
        return events
    }

    /// What each object runs after `reports`: an object whose entries were not read this time
    /// (the process was refused before) keeps what was last read from it.
    static func objects(_ reports: [ObjectPatchReport], before: [ObjectPatchReport]) -> [ObjectPatchReport] {
        reports.map { report in
            guard !report.inspected,
                  let known = before.first(where: { $0.buildID == report.buildID && $0.path == report.path }) else { return report }
            var kept = report
            kept.release = known.release
            return kept
        }
    }

    /// `PATH ID (level N)` for each object (`PATH none` when it runs its own code), comma-separated.
    static func summary(_ objects: [ObjectPatchReport]) -> String {
        objects.map { "\($0.path) \($0.release?.description ?? "none")" }.joined(separator: ", ")
    }
}
