import Artifact
import Engine
import Foundation
import Glibc
import LinuxSystem

/// The four user ids of a process, as the Engine reads them from /proc/PID/status.
typealias ProcessCredentials = ProcessStatus.UserIDs

extension ProcessStatus.UserIDs {
    /// Whether no unprivileged user may signal, trace or write the process: kill(2) needs the
    /// sender's real or effective uid to equal the target's real or saved uid, ptrace and
    /// /proc/PID/mem need the caller's uid to equal all of the target's. With all four 0, only root
    /// (or CAP_KILL, CAP_SYS_PTRACE) can; a set-user-ID root program started by a user keeps that
    /// user's real uid and is not root-only.
    var isRootOnly: Bool { real == 0 && effective == 0 && saved == 0 && fileSystem == 0 }

    /// The credentials of `pid` now (a zombie's too), or nil when it is gone or unreadable.
    static func read(_ pid: ProcessID) -> ProcessCredentials? {
        (try? ProcFS.status(of: pid))?.userIDs
    }
}

/// Where a hotpatch's code lies in one process: the functions it replaced (their original bytes,
/// which begin with our jump) and the patch image (the mapped patch object).
struct PatchedCode: Sendable, Equatable {
    /// One address range and what it is.
    struct Region: Sendable, Equatable {
        /// `function NAME` or `patch image NAME`.
        var label: String
        var range: Range<UInt64>
    }

    /// The hotpatch these regions belong to.
    var hotpatchID: String
    var regions: [Region] = []
    /// The names the kernel gives the patch image's mapping: the patch object's file name, or
    /// `memfd:hotpatch:NAME` when the loader copied it into a memfd.
    var imageNames: Set<String> = []

    /// The region holding `address`, if any.
    func region(containing address: UInt64) -> Region? {
        regions.first { $0.range.contains(address) }
    }

    /// The regions of `hotpatch` in a process whose targeted object (`buildID`) is loaded with
    /// `loadBias`, and whose memory is laid out as `mappings`.
    /// `image`, when the patcher reported where it placed the image, replaces the look at `mappings`.
    static func locate(_ hotpatch: Hotpatch, buildID: BuildID?, loadBias: UInt64, mappings: [MemoryMapping],
                       image: Range<UInt64>? = nil) -> PatchedCode {
        var code = PatchedCode(hotpatchID: hotpatch.id)
        for target in hotpatch.targets where target.buildID == buildID {
            for redirection in target.redirections where redirection.size > 0 {
                let start = loadBias &+ redirection.offset
                code.regions.append(Region(label: "function \(redirection.symbol)", range: start..<(start &+ redirection.size)))
            }
            let name = String(target.patchObjectPath.split(separator: "/").last ?? "")
            guard !name.isEmpty else { continue }
            let names: Set<String> = [name, "memfd:hotpatch:" + name]
            code.imageNames.formUnion(names)
            if let image {
                code.regions.append(Region(label: "patch image \(name)", range: image))
                continue
            }
            for mapping in mappings where names.contains(String(mapping.path.split(separator: "/").last ?? "")) {
                code.regions.append(Region(label: "patch image \(name)", range: mapping.start..<mapping.end))
            }
        }
        return code
    }

    /// These regions and `other`'s, when both are of the same hotpatch (a process mapping two
    /// targeted objects); else `other` alone.
    func merged(with other: PatchedCode) -> PatchedCode {
        guard other.hotpatchID == hotpatchID else { return other }
        var merged = self
        for region in other.regions where !merged.regions.contains(region) { merged.regions.append(region) }
        merged.imageNames.formUnion(other.imageNames)
        return merged
    }
}

/// Decides whether a patched process's death says anything about the hotpatch, from evidence an
/// unprivileged local user cannot forge. See docs/OPERATIONS.md, "Health: which deaths count".
enum HealthCheck {
    /// Signals that look like a crash; only the first four can be faults.
    static let crashSignals: Set<Int32> = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP]
    /// Signals the CPU raises on a faulting instruction. SIGABRT is raised by the process itself
    /// (abort), SIGSYS by a seccomp filter, SIGTRAP by a breakpoint or a debugger: none says the
    /// patched code faulted.
    static let faultSignals: Set<Int32> = [SIGSEGV, SIGBUS, SIGILL, SIGFPE]

    /// What is known of the process that died.
    struct Death: Sendable {
        var pid: ProcessID
        var signal: Int32?
        var hotpatchID: String
        /// Seconds from our last patch of it to its death; nil if we did not patch it in this run.
        var secondsSincePatch: Double?
        /// Its credentials; when it was ever seen with an unprivileged uid, those.
        var credentials: ProcessCredentials?
        var code: PatchedCode?
        /// Reports logged before this (kernel log clock, µs) are of an earlier process with its pid.
        var earliestReport: UInt64
    }

    /// What the kernel log can tell.
    enum KernelWitness: Sendable {
        /// The fault reports read so far (recent ones only).
        case reports([KernelFaultReport])
        /// Not readable, or the kernel does not write reports; the reason says which.
        case unavailable(reason: String)
    }

    /// The verdict on one death.
    enum Judgement: Equatable, Sendable {
        /// The hotpatch is suspect: revert it everywhere and quarantine it.
        case counts(reason: String)
        /// Logged, nothing else.
        case ignored(reason: String)
    }

    /// nil when the death is not a crash of a process we patched within `window` seconds (nothing
    /// to say); otherwise whether it counts against the hotpatch, and why.
    static func judge(_ death: Death, window: Double, witness: KernelWitness) -> Judgement? {
        guard let signal = death.signal, crashSignals.contains(signal),
              let age = death.secondsSincePatch, age <= window else { return nil }
        let name = signalName(signal)
        guard faultSignals.contains(signal) else {
            return .ignored(reason: "\(name) is raised by the process itself, a seccomp filter or a debugger, or sent by whoever may signal it; it is not a fault")
        }
        guard let credentials = death.credentials else {
            return .ignored(reason: "its user ids are unknown, so it may be a process its user signalled")
        }
        guard credentials.isRootOnly else {
            return .ignored(reason: "it ran with uids \(credentials): that user can send \(name) or make it fault at will")
        }
        switch witness {
        case let .unavailable(why):
            return .counts(reason: "\(name) in a root-only process; kernel fault reports cannot be read (\(why)), so the fault is not confirmed")
        case let .reports(reports):
            let sinceThePatch = reports.filter { $0.timestampMicroseconds >= death.earliestReport }
            let code = death.code
            // The report is this process's when its thread is the main thread or was seen to be one
            // of its threads; a thread gone before it could be looked up is taken as this process's
            // only when the fault lies in this process's patched code, by address or, when the
            // process died before its maps could be read (a hotpatch that crashes at once), by the
            // kernel naming this hotpatch's patch image (a content-hash name) as the mapping.
            let own = sinceThePatch.filter { report in
                report.threadID == death.pid.mainThread || report.processID == death.pid
                    || (report.processID == nil && (code?.region(containing: report.instructionPointer) != nil
                        || report.mapping.map { code?.imageNames.contains($0.name) == true } == true))
            }
            for report in own.reversed() {
                if let region = code?.region(containing: report.instructionPointer) {
                    return .counts(reason: "the kernel reported a \(report.kind) at ip 0x\(hex(report.instructionPointer)) in thread \(report.threadID), inside \(region.label)")
                }
                if let mapping = report.mapping, code?.imageNames.contains(mapping.name) == true {
                    return .counts(reason: "the kernel reported a \(report.kind) at ip 0x\(hex(report.instructionPointer)) in thread \(report.threadID), inside the patch image \(mapping.name)")
                }
            }
            if let report = own.last {
                let place = report.mapping.map { " in \($0.name)" } ?? ""
                return .ignored(reason: "the kernel reported a \(report.kind) at ip 0x\(hex(report.instructionPointer))\(place), outside the hotpatch's code")
            }
            return .ignored(reason: "the kernel reported no fault in it: \(name) was sent, not caused by a fault (or the kernel's rate limit dropped the report)")
        }
    }

    /// The earliest kernel log time (µs) a report of a process started at `startTicks` (clock ticks
    /// since boot, field 22 of /proc/PID/stat) can carry. The start time counts time suspended, the
    /// log clock does not: their present difference is taken off, and one second more for the two
    /// clocks' drift. Too early is harmless (pid reuse that fast is not), too late would lose reports.
    static func earliestReport(ofProcessStartedAt startTicks: UInt64) -> UInt64 {
        let ticksPerSecond = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let startMicroseconds = startTicks.multipliedReportingOverflow(by: 1_000_000).partialValue / ticksPerSecond
        var boot = timespec(), monotonic = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        func microseconds(_ time: timespec) -> Int64 { Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000 }
        let suspended = UInt64(max(microseconds(boot) - microseconds(monotonic), 0))
        let slack = suspended + 1_000_000
        return startMicroseconds > slack ? startMicroseconds - slack : 0
    }

    /// `SIGSEGV`, or `signal N`.
    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGFPE: "SIGFPE",
                                      SIGABRT: "SIGABRT", SIGSYS: "SIGSYS", SIGTRAP: "SIGTRAP"]
        return names[signal] ?? "signal \(signal)"
    }

    private static func hex(_ value: UInt64) -> String { String(value, radix: 16) }
}

/// Lets at most `limit` ignored-death warnings through per `interval`, so a user who kills their own
/// patched processes in a loop cannot flood the journal; the next warning let through says how
/// many were held back.
struct HealthWarningLimiter: Sendable {
    var limit = 10
    var interval: TimeInterval = 60
    private var windowStart = Date.distantPast
    private var admitted = 0
    private var suppressed = 0

    /// Whether to log now, and how many were suppressed since the last one logged.
    mutating func admit(now: Date = Date()) -> (log: Bool, suppressedBefore: Int) {
        if now.timeIntervalSince(windowStart) >= interval {
            windowStart = now
            admitted = 0
        }
        guard admitted < limit else {
            suppressed += 1
            return (false, 0)
        }
        admitted += 1
        defer { suppressed = 0 }
        return (true, suppressed)
    }
}

/// The agent's health-check state: the processes within their health window, the kernel's fault
/// reports, and what was already logged.
struct HealthWatch: Sendable {
    /// Every process patched in this run whose health window may still be open, by pid. Kept apart
    /// from the agent's process list, which a full pass that no longer finds a dying process
    /// forgets before its exit event is handled.
    var watched: [ProcessID: ProcessRecord] = [:]
    /// Set by the process watch service; nil until then (the check then does without).
    var faultLog: KernelFaultLog?
    var limiter = HealthWarningLimiter()
    /// Whether "the kernel does not report faults" was logged (once per run).
    var exceptionTraceOffLogged = false

    /// Starts or refreshes watching `record` (just patched), and forgets processes whose window
    /// closed more than `window` seconds ago (their death can no longer count).
    mutating func watch(_ record: ProcessRecord, window: Double, now: Date = Date()) {
        watched = watched.filter { entry in entry.value.patchedAt.map { now.timeIntervalSince($0) <= window } ?? false }
        watched[record.identity.pid] = record
    }
}

extension HealthWatch {
    /// What one process's end asks of the agent: the lines to log, and the hotpatch quarantined
    /// (already recorded in the state), after which every process must be reconciled again.
    struct ExitAssessment: Equatable, Sendable {
        var events: [AgentEvent] = []
        var quarantined: String?
    }

    /// Judges the end of `pid` by `signal`. `listed` is its record in the process list (nil when a
    /// full pass forgot it), `credentialsNow` its user ids read at its death, `kernelReportsFaults`
    /// the sysctl's answer (both read only for a crash of a watched process). A death that counts
    /// quarantines the hotpatch in `state`; one that does not is logged, rate-limited (a user may
    /// kill their own processes in a loop). The watched entry of `pid` is forgotten either way.
    mutating func assessExit(of pid: ProcessID, signal: Int32?, listed: ProcessRecord?,
                             credentialsNow: @autoclosure () -> ProcessCredentials?, window: Double,
                             kernelReportsFaults: @autoclosure () -> Bool, state: inout AgentState, now: Date,
                             earliestReport: (UInt64) -> UInt64 = HealthCheck.earliestReport) -> ExitAssessment {
        // Reverted since (still listed, without a hotpatch): its death says nothing of the hotpatch.
        guard var record = watched.removeValue(forKey: pid), listed == nil || listed?.hotpatch != nil,
              let signal, HealthCheck.crashSignals.contains(signal), let hotpatch = record.hotpatch,
              let patchedAt = record.patchedAt else { return ExitAssessment() }
        // A zombie still shows its credentials; a later drop of root taints it.
        record.observe(credentialsNow())
        let age = now.timeIntervalSince(patchedAt)
        let death = HealthCheck.Death(pid: pid, signal: signal, hotpatchID: hotpatch, secondsSincePatch: age,
                                      credentials: record.credentials, code: record.patchedCode,
                                      earliestReport: earliestReport(record.identity.startTime))
        let what = "PID \(pid) (\(record.executable)) died of \(HealthCheck.signalName(signal)) \(Int(age))s after hotpatch \(hotpatch) was applied"
        guard age <= window else { return ExitAssessment() }
        let (witness, note) = self.witness(kernelReportsFaults: kernelReportsFaults())
        var assessment = ExitAssessment(events: note.map { [$0] } ?? [])
        switch HealthCheck.judge(death, window: window, witness: witness) {
        case nil:
            return assessment
        case let .ignored(why):
            let admission = limiter.admit(now: now)
            guard admission.log else { return assessment }
            let held = admission.suppressedBefore > 0 ? " (\(admission.suppressedBefore) more such deaths were not logged)" : ""
            var metadata = ["hotpatch.id": hotpatch, "target.pid": "\(pid)", "target.exe": record.executable,
                            "target.signal": "\(signal)", "reason": why]
            if let credentials = record.credentials { metadata["target.uid"] = "\(credentials.real)" }
            let message = "\(what), ignored: \(why); nothing reverted or quarantined\(held)"
            assessment.events.append(.logged(.healthIgnored, message, level: JournalEvent.healthIgnored.defaultLevel, metadata: metadata))
            return assessment
        case let .counts(why):
            let reason = "\(what): \(why)"
            state.quarantined[hotpatch] = reason
            let event = AgentEvent.recorded(.quarantined, release: hotpatch, "Quarantined hotpatch \(hotpatch) and reverting it everywhere: \(reason)",
                                            level: .error, metadata: ["hotpatch.id": hotpatch, "target.pid": "\(pid)", "reason": reason])
            assessment.events.append(event)
            assessment.quarantined = hotpatch
            return assessment
        }
    }

    /// The kernel's fault reports, or why the health check must do without them; the line to log
    /// the first time the kernel is found not to report faults. `kernelReportsFaults` is the
    /// sysctl's answer (`KernelFaultLog.kernelReportsFaults`).
    mutating func witness(kernelReportsFaults: @autoclosure () -> Bool) -> (HealthCheck.KernelWitness, AgentEvent?) {
        guard let log = faultLog else { return (.unavailable(reason: "not opened"), nil) }
        if case let .unavailable(why) = log.availability { return (.unavailable(reason: why), nil) }
        guard kernelReportsFaults() else {
            var event: AgentEvent?
            if !exceptionTraceOffLogged {
                exceptionTraceOffLogged = true
                event = .logged(nil, "The kernel does not report faults (sysctl debug.exception-trace = 0); crashes of patched root-only processes count without confirmation",
                                level: .warning)
            }
            return (.unavailable(reason: "sysctl debug.exception-trace is 0"), event)
        }
        return (.reports(log.reports()), nil)
    }

    /// Why the kernel's fault reports cannot be read, when they were opened and cannot.
    var faultReportsUnavailable: String? {
        if let log = faultLog, case let .unavailable(why) = log.availability { return why }
        return nil
    }
}
