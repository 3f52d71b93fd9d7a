@testable import Artifact
import Glibc
import LinuxSystem
import Testing
@testable import Engine

/// What the agent does about the kernel, decided from the releases, the running kernel and what
/// the kernel holds. Values only: no module is loaded here (the qemu harness does that).
@Suite struct KernelPlanTests {
    private let running = BuildID(bytes: [0x57, 0x57])
    private let other = BuildID(bytes: [0x58, 0x58])

    private func module(_ name: String, for build: BuildID? = nil) -> KernelLivePatch {
        KernelLivePatch(kernelRelease: "6.1.0-57-amd64", buildID: build ?? running, livepatchName: name,
                        modulePath: "/store/objects/\(name).ko", moduleSHA256: String(repeating: "0", count: 64))
    }

    private func release(_ level: Int, baseline: String = "B1", _ kernel: [KernelLivePatch]) -> HotpatchRelease {
        HotpatchRelease(hotpatch: Hotpatch(id: "\(baseline)-hp\(level)", baseline: baseline, level: level, targets: []),
                        description: "", cves: [], kernel: kernel)
    }

    private func kernel(buildID: BuildID? = nil, modules: Bool = true, livepatch: Bool = true, disabled: Bool = false,
                        lockdown: String? = nil, enforced: Bool = false) -> RunningKernel {
        RunningKernel(release: "6.1.0-57-amd64", buildID: buildID ?? running, modulesSupported: modules, livePatchSupported: livepatch,
                      modulesDisabled: disabled, lockdown: lockdown, signatureEnforced: enforced)
    }

    private func snapshot(_ patches: [LivePatchState] = [], loaded: Set<String> = []) -> LivePatchSnapshot {
        LivePatchSnapshot(patches: patches, loadedModules: loaded.union(patches.map(\.name)))
    }

    private func applied(_ name: String) -> LivePatchState { LivePatchState(name: name, enabled: true, inTransition: false) }

    @Test func desiredFix_isTheHighestLevelWithAModuleForTheRunningKernel() {
        let levels = [release(1, [module("lp1")]), release(2, [module("lp2", for: other)]), release(3, [])]
        let fix = KernelPlan.desiredFix(desired: levels[2].hotpatch, releases: levels, kernel: running)
        #expect(fix?.patch.livepatchName == "lp1")
        #expect(fix?.release == FixRelease(id: "B1-hp1", level: 1))
    }

    @Test func desiredFix_ignoresLevelsAboveTheDesiredOneOtherBaselinesAndSkippedLevels() {
        let levels = [release(1, [module("lp1")]), release(2, [module("lp2")]), release(3, [module("lp3")]),
                      release(9, baseline: "B2", [module("lpB2")])]
        #expect(KernelPlan.desiredFix(desired: levels[1].hotpatch, releases: levels, kernel: running)?.patch.livepatchName == "lp2")
        #expect(KernelPlan.desiredFix(desired: levels[2].hotpatch, releases: levels, kernel: running,
                                      skipping: ["B1-hp3", "B1-hp2"])?.patch.livepatchName == "lp3")
        let quarantined = KernelPlan.desiredFix(desired: levels[2].hotpatch, releases: levels, kernel: running, skipping: ["B1-hp2"])
        #expect(quarantined?.patch.livepatchName == "lp3")
        #expect(KernelPlan.desiredFix(desired: nil, releases: levels, kernel: running) == nil)
        #expect(KernelPlan.desiredFix(desired: levels[2].hotpatch, releases: levels, kernel: nil) == nil)
    }

    @Test func decide_withoutAModuleForThisKernel_hasNothingToDoEvenWithoutModuleSupport() {
        let levels = [release(1, [module("lp1", for: other)])]
        #expect(KernelPlan.decide(desired: levels[0].hotpatch, releases: levels, kernel: kernel(modules: false), snapshot: snapshot())
                == .nothingToDo)
    }

    @Test func decide_whenNothingIsLoaded_appliesTheDesiredModule() {
        let levels = [release(1, [module("lp1")])]
        guard case let .apply(fix, replacing) = KernelPlan.decide(desired: levels[0].hotpatch, releases: levels, kernel: kernel(),
                                                                 snapshot: snapshot()) else { Issue.record("no apply"); return }
        #expect(fix.patch.livepatchName == "lp1")
        #expect(replacing.isEmpty)
    }

    @Test func decide_atTheNextLevel_appliesItReplacingTheLoadedLevelAndForeignPatches() {
        let levels = [release(1, [module("lp1")]), release(2, [module("lp2")])]
        let decision = KernelPlan.decide(desired: levels[1].hotpatch, releases: levels, kernel: kernel(),
                                         snapshot: snapshot([applied("foreign"), applied("lp1")]))
        guard case let .apply(fix, replacing) = decision else { Issue.record("no apply: \(decision)"); return }
        #expect(fix.release.level == 2)
        #expect(replacing == ["foreign", "lp1"])
    }

    @Test func decide_whenTheDesiredModuleIsInForce_changesNothing() {
        let levels = [release(1, [module("lp1")]), release(2, [])]
        #expect(KernelPlan.decide(desired: levels[1].hotpatch, releases: levels, kernel: kernel(), snapshot: snapshot([applied("lp1")]))
                == .inForce(KernelFix(patch: module("lp1"), release: FixRelease(id: "B1-hp1", level: 1))))
    }

    @Test func decide_whenTheDesiredLevelHasNoKernelFix_revertsOnlyOurPatches() {
        let levels = [release(1, [module("lp1")])]
        #expect(KernelPlan.decide(desired: nil, releases: levels, kernel: kernel(), snapshot: snapshot([applied("foreign"), applied("lp1")]))
                == .revert(["lp1"]))
        #expect(KernelPlan.decide(desired: levels[0].hotpatch, releases: levels, skipping: [], kernel: kernel(),
                                  snapshot: snapshot([applied("foreign")])) != .revert(["foreign"]))
    }

    @Test func decide_whenTheKernelCannotLoadModules_namesTheReason() {
        let levels = [release(1, [module("lp1")])]
        let fix = KernelFix(patch: module("lp1"), release: FixRelease(id: "B1-hp1", level: 1))
        for (host, reason) in [(kernel(modules: false), KernelUnavailability.noModuleSupport),
                               (kernel(livepatch: false), .noLivePatchSupport), (kernel(disabled: true), .moduleLoadingDisabled)] {
            #expect(KernelPlan.decide(desired: levels[0].hotpatch, releases: levels, kernel: host, snapshot: snapshot())
                    == .notApplicable(fix, reason))
        }
    }

    @Test func decide_whenModuleLoadingWasSwitchedOffAfterTheFixLoaded_reportsItInForce() {
        let levels = [release(1, [module("lp1")])]
        let fix = KernelFix(patch: module("lp1"), release: FixRelease(id: "B1-hp1", level: 1))
        #expect(KernelPlan.decide(desired: levels[0].hotpatch, releases: levels, kernel: kernel(disabled: true),
                                  snapshot: snapshot([applied("lp1")])) == .inForce(fix))
    }

    @Test func decide_duringATransition_followsOursAndWaitsForAnothers() {
        let levels = [release(1, [module("lp1")]), release(2, [module("lp2")])]
        let ours = LivePatchState(name: "lp2", enabled: true, inTransition: true)
        guard case let .followTransition(fix, patch) = KernelPlan.decide(desired: levels[1].hotpatch, releases: levels, kernel: kernel(),
                                                                        snapshot: snapshot([applied("lp1"), ours])) else {
            Issue.record("not followed"); return
        }
        #expect(fix.patch.livepatchName == "lp2" && patch == "lp2")
        let foreign = LivePatchState(name: "kpatch_x", enabled: true, inTransition: true)
        #expect(KernelPlan.decide(desired: levels[1].hotpatch, releases: levels, kernel: kernel(), snapshot: snapshot([foreign]))
                == .waitForOtherTransition(patch: "kpatch_x"))
    }

    @Test func inForce_isReadFromTheKernelsPatchesByName() {
        let levels = [release(1, [module("lp1")]), release(2, [module("lp2")]), release(3, [module("lp2")])]
        #expect(KernelPlan.inForce(releases: levels, kernel: running, snapshot: snapshot([applied("lp1")]))?.release.level == 1)
        // A module two levels share is named by the highest of them, or by the desired fix.
        #expect(KernelPlan.inForce(releases: levels, kernel: running, snapshot: snapshot([applied("lp2")]))?.release.level == 3)
        let desired = KernelPlan.desiredFix(desired: levels[1].hotpatch, releases: levels, kernel: running)
        #expect(KernelPlan.inForce(releases: levels, kernel: running, snapshot: snapshot([applied("lp2")]), preferring: desired)?.release.level == 2)
        #expect(KernelPlan.inForce(releases: levels, kernel: running,
                                   snapshot: snapshot([LivePatchState(name: "lp1", enabled: true, inTransition: true)])) == nil)
        #expect(KernelPlan.inForce(releases: levels, kernel: other, snapshot: snapshot([applied("lp1")])) == nil)
    }

    @Test func leftoverModules_areOurLoadedModulesWithoutALivePatchFolder() {
        let levels = [release(1, [module("lp1")]), release(2, [module("lp2")])]
        #expect(KernelPlan.leftoverModules(releases: levels, kernel: running,
                                           snapshot: snapshot([applied("lp2")], loaded: ["lp1", "ext4", "foreign"])) == ["lp1"])
    }

    @Test func unavailability_refusesOnlyUnsignedModulesUnderLockdownOrEnforcement() {
        #expect(kernel(lockdown: "integrity").unavailability(moduleIsSigned: false) == .lockdown(mode: "integrity"))
        #expect(kernel(lockdown: "integrity").unavailability(moduleIsSigned: true) == nil)
        #expect(kernel(enforced: true).unavailability(moduleIsSigned: false) == .signatureEnforced)
        #expect(kernel(enforced: true).unavailability(moduleIsSigned: true) == nil)
        #expect(kernel(disabled: true).unavailability(moduleIsSigned: true) == .moduleLoadingDisabled)
        #expect(KernelUnavailability.signatureEnforced.description.hasPrefix("not applicable: "))
    }

    @Test func health_countsOopsesAndTaintBeyondWhatALivePatchAdds() {
        let before = KernelHealth(taint: KernelTaint(mask: 0), oopsCount: 0)
        #expect(KernelHealth(taint: KernelTaint(mask: 45056), oopsCount: 0).failureSignal(since: before) == nil)
        let warned = KernelHealth(taint: KernelTaint(mask: 45056 | 1 << 9), oopsCount: 1).failureSignal(since: before)
        #expect(warned == "1 kernel oops(es) and new taint flags W")
        #expect(KernelTaint(mask: 45056).description == "OEK")
    }

    @Test func failure_namesTheKernelsReasonForARefusedLoad() {
        #expect(KernelFailure.loadRefused(errno: ENOEXEC).description.contains("ENOEXEC (Exec format error)"))
        #expect(KernelFailure.loadRefused(errno: EKEYREJECTED).description.contains("EKEYREJECTED"))
        let stalled = KernelFailure.transitionStalled(blocking: [BlockingTask(pid: ProcessID(42), tid: ThreadID(43), command: "holder")],
                                                      seconds: 61.6, signalled: false)
        #expect(stalled.description == "the transition stalled for 62 s (blocked by holder (pid 42, tid 43); "
            + "the kernel has no signal attribute and sends the fake signal itself) and was reverted")
        let signalled = KernelFailure.transitionStalled(blocking: [], seconds: 20, signalled: true)
        #expect(signalled.description.contains("(blocked by no task named; the blocking tasks were sent the fake signal through sysfs)"))
    }
}
