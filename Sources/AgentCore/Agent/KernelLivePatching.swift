import AgentProtocol
import Artifact
import Engine
import Foundation
import LinuxSystem
import Logging

/// What one cycle did to the running kernel's live patch: its status, the lines to log, and the
/// release to quarantine for this kernel when a health signal followed the apply.
struct KernelCycleResult: Sendable {
    /// The kernel's status (nil when the running kernel could not be read).
    var status: AgentStatus.Kernel?
    /// The events to log (journal and history).
    var events: [AgentEvent]
    /// A release to quarantine for this kernel (`KernelLivePatching.quarantineKey`) and why.
    var quarantine: (key: String, reason: String)?
    /// The fix attempted and failed in this cycle (not retried until the channel changes).
    var failedAttempt: String?
}

/// The agent's side of kernel live patches: the desired hotpatch (the processes' own, nil when
/// unenrolled) is turned into a `KernelDecision`, carried out by the Engine's `KernelPatcher`,
/// and reported as status, journal events and a quarantine. The pure parts (`status`, `events`,
/// `desiredForKernel`, `hasSysModule`) are tested without a kernel, a whole cycle (`run`) against a
/// simulated kernel (KernelCycleTests), and the patcher on a real kernel in qemu (packaging/kernel-e2e).
enum KernelLivePatching {
    /// The reason a fix for this kernel is not applicable when the agent cannot load modules.
    static let missingCapabilityReason = "the agent's unit does not grant CAP_SYS_MODULE (see OPERATIONS.md)"

    /// CAP_SYS_MODULE's bit in the capability sets (linux/capability.h).
    static let sysModuleBit: UInt64 = 16

    /// Whether the `CapEff:` line of a `/proc/PID/status` text holds CAP_SYS_MODULE (false when absent).
    static func hasSysModule(procStatus text: String) -> Bool {
        for line in text.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces)
            guard let mask = UInt64(hex, radix: 16) else { return false }
            return mask & (1 << sysModuleBit) != 0
        }
        return false
    }

    /// Whether this process may load modules (CAP_SYS_MODULE in its effective set).
    static func agentHasSysModule() -> Bool {
        guard let bytes = try? Files.read("/proc/self/status", limit: 1 << 16) else { return false }
        return hasSysModule(procStatus: String(decoding: bytes, as: UTF8.self))
    }

    /// The quarantine key of release `id` for the kernel with `buildID`: kept in the state's
    /// quarantine beside the processes' hotpatch ids, but naming the kernel, so a kernel failure
    /// stops only that kernel's module and the processes keep the level.
    static func quarantineKey(id: String, kernel buildID: String) -> String { "\(id)@kernel:\(buildID)" }

    /// The release ids quarantined for the kernel with `buildID` among `quarantined`'s keys.
    static func quarantinedForKernel(_ quarantined: [String: String], kernel buildID: String?) -> Set<String> {
        guard let buildID else { return [] }
        let suffix = "@kernel:\(buildID)"
        return Set(quarantined.keys.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) })
    }

    /// The level the kernel should run: `desired`, or the highest level of its baseline below it
    /// not quarantined for this kernel (`KernelPlan.desiredFix` never skips `desired` itself).
    static func desiredForKernel(_ desired: Hotpatch?, releases: [HotpatchRelease], quarantined: Set<String>) -> Hotpatch? {
        guard let desired, quarantined.contains(desired.id) else { return desired }
        return releases.map(\.hotpatch)
            .filter { $0.baseline == desired.baseline && $0.level <= desired.level && !quarantined.contains($0.id) }
            .max { $0.level < $1.level }
    }

    /// Why the kernel cannot take a module, without the "not applicable: " the state already says.
    static func reason(_ unavailability: KernelUnavailability) -> String {
        let text = unavailability.description
        let prefix = "not applicable: "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    /// The fix a decision is about, if any.
    static func fix(of decision: KernelDecision) -> KernelFix? {
        switch decision {
        case let .inForce(fix), let .apply(fix, _), let .followTransition(fix, _), let .notApplicable(fix, _): return fix
        case .nothingToDo, .waitForOtherTransition, .revert: return nil
        }
    }

    /// The status after `outcome` of `decision` (or, with `outcome` nil, of a decision not carried
    /// out because the agent lacks CAP_SYS_MODULE).
    static func status(kernel: RunningKernel, decision: KernelDecision, outcome: KernelOutcome?) -> AgentStatus.Kernel {
        var status = AgentStatus.Kernel(release: kernel.release, buildId: kernel.buildID?.description, state: .none)
        func describe(_ fix: KernelFix?) {
            guard let fix else { return }
            status.hotpatch = fix.release.id
            status.level = fix.release.level
            status.livepatch = fix.patch.livepatchName
        }
        describe(fix(of: decision))
        guard let outcome else {
            status.state = .notApplicable
            status.reason = missingCapabilityReason
            return status
        }
        switch outcome {
        case let .applied(fix, _, _):
            describe(fix)
            status.state = .applied
        case .reverted:
            status = AgentStatus.Kernel(release: kernel.release, buildId: kernel.buildID?.description, state: .none)
        case let .inTransition(patch, blocking, seconds):
            status.state = .inTransition
            status.livepatch = patch
            status.transitionSeconds = seconds
            status.blocking = blocking.map { .init(pid: $0.pid.rawValue, tid: $0.tid.rawValue, comm: $0.command) }
        case let .failed(fix, failure):
            describe(fix)
            status.state = .failed
            status.reason = failure.description
        case let .notApplicable(fix, reason):
            describe(fix)
            status.state = .notApplicable
            status.reason = Self.reason(reason)
        case let .unchanged(decision):
            switch decision {
            case .inForce: status.state = .applied
            case let .waitForOtherTransition(patch):
                status.state = .inTransition
                status.livepatch = patch
                status.reason = "another tool's live patch \(patch) is in transition; the kernel takes no new patch until it ends"
            default:
                // No release for this kernel: say why a module could not be loaded anyway, without a fix.
                if let reason = kernel.unavailability {
                    status.state = .notApplicable
                    status.reason = Self.reason(reason)
                }
            }
        }
        return status
    }

    /// The journal fields of a kernel event.
    static func metadata(_ status: AgentStatus.Kernel) -> [String: String] {
        var fields = ["hotpatch.kernel.release": status.release]
        if let buildID = status.buildId { fields["hotpatch.kernel.build_id"] = buildID }
        if let id = status.hotpatch { fields["hotpatch.id"] = id }
        if let name = status.livepatch { fields["hotpatch.livepatch"] = name }
        if let reason = status.reason { fields["reason"] = reason }
        if let seconds = status.transitionSeconds { fields["hotpatch.kernel.transition_seconds"] = String(format: "%.1f", seconds) }
        if !status.blocking.isEmpty {
            fields["hotpatch.kernel.blocking"] = status.blocking.map { "\($0.comm) (pid \($0.pid), tid \($0.tid))" }.joined(separator: ", ")
        }
        return fields
    }

    /// The events of `outcome` of `decision`, described by `status`; none when nothing changed.
    static func events(decision: KernelDecision, outcome: KernelOutcome?, status: AgentStatus.Kernel) -> [AgentEvent] {
        let fields = metadata(status)
        let kernel = "kernel \(status.release)"
        let named = status.livepatch.map { name in status.hotpatch.map { "\(name) from \($0) level \(status.level ?? 0)" } ?? name } ?? "live patch"
        guard let outcome else {
            return [.recorded(.kernelNotApplicable, release: status.hotpatch, "Kernel live patch \(named) not applicable on \(kernel): \(missingCapabilityReason)",
                              level: .warning, metadata: fields)]
        }
        switch outcome {
        case let .applied(_, seconds, _):
            if case let .apply(_, replacing) = decision, !replacing.isEmpty {
                return [.recorded(.kernelReplaced, release: status.hotpatch,
                                  "Kernel live patch \(named) replaced \(replacing.joined(separator: ", ")) on \(kernel) in \(String(format: "%.1f", seconds)) s",
                                  level: .notice, metadata: fields)]
            }
            return [.recorded(.kernelApplied, release: status.hotpatch, "Kernel live patch \(named) applied to \(kernel) in \(String(format: "%.1f", seconds)) s",
                              level: .notice, metadata: fields)]
        case let .reverted(names, _):
            var revertedFields = fields
            revertedFields["hotpatch.livepatch"] = names.joined(separator: " ")
            return [.recorded(.kernelReverted, release: nil, "Kernel live patch(es) \(names.joined(separator: ", ")) reverted and unloaded on \(kernel)",
                              level: .notice, metadata: revertedFields)]
        case .inTransition:
            let tasks = fields["hotpatch.kernel.blocking"].map { ", blocked by \($0)" } ?? ""
            return [.recorded(.kernelStalled, release: status.hotpatch,
                              "Kernel live patch \(named) still in transition on \(kernel) after \(fields["hotpatch.kernel.transition_seconds"] ?? "?") s\(tasks); following it",
                              level: .warning, metadata: fields)]
        case let .failed(_, failure):
            if case let .transitionStalled(blocking, seconds, _, _) = failure {
                var stalledFields = fields
                stalledFields["hotpatch.kernel.transition_seconds"] = String(format: "%.1f", seconds)
                if !blocking.isEmpty { stalledFields["hotpatch.kernel.blocking"] = blocking.map(\.description).joined(separator: ", ") }
                return [.recorded(.kernelStalled, release: status.hotpatch, "Kernel live patch \(named) on \(kernel): \(status.reason ?? failure.description)",
                                  level: .warning, metadata: stalledFields)]
            }
            return [.recorded(.kernelFailed, release: status.hotpatch, "Kernel live patch \(named) failed on \(kernel): \(failure)", level: .error, metadata: fields)]
        case let .notApplicable(_, reason):
            return [.recorded(.kernelNotApplicable, release: status.hotpatch, "Kernel live patch \(named) on \(kernel): \(reason)", level: .warning, metadata: fields)]
        case .unchanged:
            return []
        }
    }

    /// The verdict reason the kernel's status adds: none without a release for this kernel (the
    /// verdict is then as if the agent did not know kernels), `exposed` when its fix is not in
    /// force (failed, not applicable), `hotpatch-pending` while a transition is under way.
    static func reason(_ status: AgentStatus.Kernel?) -> AgentStatus.Reason? {
        guard let status else { return nil }
        let line = "kernel " + ControlText.kernelLine(status)
        switch status.state {
        case .none, .applied: return nil
        case .inTransition: return .init(verdict: .hotpatchPending, message: line)
        case .failed: return .init(verdict: .exposed, message: line)
        case .notApplicable: return status.hotpatch == nil ? nil : .init(verdict: .exposed, message: line)
        }
    }

    /// The kernel's status read live while a cycle's apply waits for its transition (the cycle's
    /// own status comes only when it returns): nil when no transition is under way.
    static func liveTransition(releases: [HotpatchRelease], paths: KernelPaths, since start: Date) -> AgentStatus.Kernel? {
        guard let kernel = try? RunningKernel.read(paths), let snapshot = try? LivePatchSnapshot.read(paths),
              let transition = snapshot.transition else { return nil }
        let known = KernelPlan.knownFixes(releases: releases, kernel: kernel.buildID)[transition.name]
        let blocking = (try? LivePatchSnapshot.blockingTasks(of: transition, paths: paths)) ?? []
        return AgentStatus.Kernel(
            release: kernel.release, buildId: kernel.buildID?.description, state: .inTransition, hotpatch: known?.release.id,
            level: known?.release.level, livepatch: transition.name, transitionSeconds: Date().timeIntervalSince(start),
            blocking: blocking.map { .init(pid: $0.pid.rawValue, tid: $0.tid.rawValue, comm: $0.command) })
    }

    /// Why a channel whose desired level carries kernel modules has none for the running kernel
    /// (they are for other builds), or nil when the level carries none at all or some level up to
    /// it has one for this build (held or quarantined, say). Said in the kernel's status only:
    /// without a release for this kernel the verdict is as if the agent knew no kernels.
    static func otherKernelsReason(desired: Hotpatch?, releases: [HotpatchRelease], kernel: RunningKernel) -> String? {
        guard let desired else { return nil }
        // The desired release's own modules: an earlier level's module for this build (in force,
        // held or quarantined) does not make this statement false.
        let modules = releases.filter { $0.hotpatch.id == desired.id }.flatMap(\.kernel)
        guard !modules.contains(where: { $0.buildID == kernel.buildID }) else { return nil }
        let others = modules.filter { $0.buildID != kernel.buildID }
        guard !others.isEmpty else { return nil }
        var builds: [String] = []
        for module in others {
            let build = "\(module.kernelRelease) (build-id \(module.buildID))"
            if !builds.contains(build) { builds.append(build) }
        }
        return "no live patch module for this kernel build (build-id \(kernel.buildID?.description ?? "unknown")) in \(desired.id) (level \(desired.level)): "
            + "the modules there are for \(builds.joined(separator: ", ")); nothing loaded"
    }

    /// What the kernel holds after a failed attempt, for its reason: the fix of ours still in
    /// force (an earlier level the failed one was to replace), or that none is.
    static func remainingInForce(releases: [HotpatchRelease], kernel: RunningKernel, paths: KernelPaths) -> String {
        guard let snapshot = try? LivePatchSnapshot.read(paths),
              let fix = KernelPlan.inForce(releases: releases, kernel: kernel.buildID, snapshot: snapshot) else {
            return "no live patch of ours is in force"
        }
        return "\(fix.patch.livepatchName) from \(fix.release.id) level \(fix.release.level) remains in force"
    }

    /// One cycle on the kernel under `paths` (blocking: up to four times `stallSeconds`, two waits
    /// for the transition and two for its revert): reads the kernel, decides with `desired` (nil:
    /// only our patches are reverted, nothing is loaded), performs, and checks the kernel's health
    /// after an apply. `notRetrying` is the fix (`quarantineKey`) that failed before with the same
    /// channel: not loaded again, and still named while the reversal of its stalled transition is followed.
    static func run(desired: Hotpatch?, releases: [HotpatchRelease], skipping: Set<String>, quarantined: [String: String],
                    notRetrying: String?, paths: KernelPaths, stallSeconds: Double, mayLoadModules: Bool,
                    control: any KernelModuleControl = SystemKernelModuleControl()) -> KernelCycleResult {
        guard let kernel = try? RunningKernel.read(paths) else { return KernelCycleResult(status: nil, events: []) }
        let forKernel = quarantinedForKernel(quarantined, kernel: kernel.buildID?.description)
        let desiredHere = desiredForKernel(desired, releases: releases, quarantined: forKernel)
        let snapshot = (try? LivePatchSnapshot.read(paths)) ?? LivePatchSnapshot(patches: [], loadedModules: [])
        let decision = KernelPlan.decide(desired: desiredHere, releases: releases, skipping: skipping.union(forKernel),
                                         kernel: kernel, snapshot: snapshot)
        if case let .apply(fix, _) = decision {
            let key = quarantineKey(id: fix.release.id, kernel: kernel.buildID?.description ?? "")
            if !mayLoadModules {
                let refused = Self.status(kernel: kernel, decision: decision, outcome: nil)
                return KernelCycleResult(status: refused, events: events(decision: decision, outcome: nil, status: refused))
            }
            if key == notRetrying {
                var waiting = Self.status(kernel: kernel, decision: decision, outcome: .unchanged(decision))
                waiting.state = .failed
                waiting.reason = "failed before with this channel version; retried when the channel changes or on agentctl apply \(fix.release.id)"
                return KernelCycleResult(status: waiting, events: [], failedAttempt: key)
            }
        }
        let before = try? KernelHealth.read(paths)
        let patcher = KernelPatcher(paths: paths, control: control, stallSeconds: stallSeconds)
        let outcome = patcher.perform(decision, releases: releases, kernel: kernel)
        var reported = Self.status(kernel: kernel, decision: decision, outcome: outcome)
        if case .failed = outcome, let reason = reported.reason {
            reported.reason = "\(reason); \(remainingInForce(releases: releases, kernel: kernel, paths: paths))"
        }
        if case let .followTransition(fix, _) = decision, quarantineKey(id: fix.release.id, kernel: kernel.buildID?.description ?? "") == notRetrying {
            // The reversal of the failed fix's stalled transition: the failure stands (the fix is
            // still not loaded again) while it is followed and once it ends.
            switch outcome {
            case .reverted:
                reported.state = .failed
                reported.hotpatch = fix.release.id
                reported.level = fix.release.level
                reported.livepatch = fix.patch.livepatchName
                reported.reason = "its stalled transition has now been reverted; not loaded again until the channel changes or on agentctl apply \(fix.release.id); "
                    + remainingInForce(releases: releases, kernel: kernel, paths: paths)
                return KernelCycleResult(status: reported, events: events(decision: decision, outcome: outcome, status: reported), failedAttempt: notRetrying)
            case .inTransition:
                return KernelCycleResult(status: reported, events: events(decision: decision, outcome: outcome, status: reported), failedAttempt: notRetrying)
            default:
                break
            }
        }
        if case .unchanged(.nothingToDo) = outcome, reported.state == .none,
           let why = otherKernelsReason(desired: desired, releases: releases, kernel: kernel) {
            reported.state = .notApplicable
            reported.reason = why
            return KernelCycleResult(status: reported, events: [
                .recorded(.kernelNotApplicable, release: nil, "Kernel live patch not applicable on kernel \(kernel.release): \(why)",
                          level: .notice, metadata: metadata(reported)),
            ])
        }
        var result = KernelCycleResult(status: reported, events: events(decision: decision, outcome: outcome, status: reported))
        if case let .failed(fix?, _) = outcome { result.failedAttempt = quarantineKey(id: fix.release.id, kernel: kernel.buildID?.description ?? "") }
        guard case let .applied(fix, _, unexpectedTaint) = outcome, let before else { return result }
        var signal = (try? KernelHealth.read(paths)).flatMap { $0.failureSignal(since: before) }
        if signal == nil, !unexpectedTaint.isEmpty { signal = "new taint flags \(unexpectedTaint)" }
        guard let signal else { return result }
        // A health signal right after the apply: the patch is suspect. Revert it and quarantine
        // that release for this kernel, as a crash does for a process.
        let reverted = patcher.revert([fix.patch.livepatchName])
        let why = "after the apply the kernel reported \(signal)"
        reported.state = .failed
        if case .reverted = reverted {
            reported.reason = "\(why); reverted and quarantined for this kernel"
        } else {
            reported.reason = "\(why); quarantined for this kernel, and reverting it did not finish: \(reverted)"
        }
        result.status = reported
        result.events.append(.recorded(.kernelFailed, release: fix.release.id,
                                       "Kernel live patch \(fix) failed its health check on kernel \(kernel.release): \(reported.reason ?? why)",
                                       level: .error, metadata: metadata(reported)))
        result.quarantine = (quarantineKey(id: fix.release.id, kernel: kernel.buildID?.description ?? ""), why)
        return result
    }
}
