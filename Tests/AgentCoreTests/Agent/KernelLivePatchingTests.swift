import AgentProtocol
@testable import Artifact
import Foundation
import LinuxSystem
import Testing
@testable import AgentCore
@testable import Engine

/// The agent's side of kernel live patches: the status, verdict, journal and metrics it makes of
/// the Engine's decisions and outcomes, and one cycle against a kernel tree of real files that
/// cannot load a module (the Engine loading one is proven under qemu, packaging/kernel-e2e).
@Suite struct KernelLivePatchingTests {
    private let running = BuildID(bytes: [0x57, 0x57])

    private func module(_ name: String) -> KernelLivePatch {
        KernelLivePatch(kernelRelease: "6.1.0-57-amd64", buildID: running, livepatchName: name,
                        modulePath: "/store/objects/\(name).ko", moduleSHA256: String(repeating: "0", count: 64))
    }

    private func fix(_ level: Int, _ name: String) -> KernelFix {
        KernelFix(patch: module(name), release: FixRelease(id: "B1-hp\(level)", level: level))
    }

    private func runningKernel(modules: Bool = true) -> RunningKernel {
        RunningKernel(release: "6.1.0-57-amd64", buildID: running, modulesSupported: modules, livePatchSupported: modules,
                      modulesDisabled: false, lockdown: nil, signatureEnforced: false)
    }

    private func facts(kernel: AgentStatus.Kernel?, quarantined: [String: String] = [:], channel: VerifiedChannel? = nil) -> StatusFacts {
        var state = AgentState()
        state.quarantined = quarantined
        return StatusFacts(
            state: state, stateProblem: nil, records: [], excludedCount: 0, lastPause: nil, channel: channel, standing: nil,
            lastCheck: nil, plan: nil, bootID: "boot-1", faultReportsUnavailable: nil, configuration: AgentConfiguration(),
            processWatch: "netlink", agentVersion: "0.0.1", kernel: kernel)
    }

    // MARK: Status and verdict

    @Test func status_applied_isUpToDateAndNamesTheLevelInForce() {
        let kernel = KernelLivePatching.status(kernel: runningKernel(), decision: .inForce(fix(2, "lp2")), outcome: .unchanged(.inForce(fix(2, "lp2"))))
        #expect(kernel == .init(release: "6.1.0-57-amd64", buildId: "5757", state: .applied, hotpatch: "B1-hp2", level: 2, livepatch: "lp2"))
        let status = StatusBuilder.status(facts(kernel: kernel))
        #expect(status.verdict == .upToDate)
        #expect(status.reasons.isEmpty)
        #expect(status.kernel == kernel)
    }

    @Test func status_whenNoReleaseForAKernelWithoutModules_isNotApplicableButAddsNoReason() {
        let kernel = KernelLivePatching.status(kernel: runningKernel(modules: false), decision: .nothingToDo, outcome: .unchanged(.nothingToDo))
        #expect(kernel.state == .notApplicable)
        #expect(kernel.hotpatch == nil)
        #expect(kernel.reason == "the kernel has no loadable module support (/proc/modules is absent)")
        let status = StatusBuilder.status(facts(kernel: kernel))
        #expect(status.verdict == .upToDate)
        #expect(status.reasons.isEmpty)
    }

    @Test func status_whenTheFixCannotBeLoaded_isExposedWithTheReason() {
        let decision = KernelDecision.notApplicable(fix(1, "lp1"), .moduleLoadingDisabled)
        let kernel = KernelLivePatching.status(kernel: runningKernel(), decision: decision, outcome: .notApplicable(fix(1, "lp1"), .moduleLoadingDisabled))
        let status = StatusBuilder.status(facts(kernel: kernel))
        #expect(status.verdict == .exposed)
        #expect(status.reasons.map(\.message) == ["kernel 6.1.0-57-amd64: B1-hp1 level 1 (lp1) not applicable: module loading is disabled until the next boot (kernel.modules_disabled = 1)"])
    }

    @Test func status_whenTheAgentLacksCapSysModule_isNotApplicableWithTheUnitReason() {
        let decision = KernelDecision.apply(fix(1, "lp1"), replacing: [])
        let kernel = KernelLivePatching.status(kernel: runningKernel(), decision: decision, outcome: nil)
        #expect(kernel.state == .notApplicable)
        #expect(kernel.reason == "the agent's unit does not grant CAP_SYS_MODULE (see OPERATIONS.md)")
        #expect(StatusBuilder.status(facts(kernel: kernel)).verdict == .exposed)
        let events = KernelLivePatching.events(decision: decision, outcome: nil, status: kernel)
        #expect(events.map(\.event) == [.kernelNotApplicable])
    }

    @Test func status_failed_isExposed() {
        let outcome = KernelOutcome.failed(fix(1, "lp1"), .loadRefused(errno: ENOEXEC))
        let kernel = KernelLivePatching.status(kernel: runningKernel(), decision: .apply(fix(1, "lp1"), replacing: []), outcome: outcome)
        #expect(kernel.state == .failed)
        #expect(kernel.reason?.contains("ENOEXEC") == true)
        let status = StatusBuilder.status(facts(kernel: kernel))
        #expect(status.verdict == .exposed)
        #expect(status.reasons.first?.message.hasPrefix("kernel 6.1.0-57-amd64: B1-hp1 level 1 (lp1) failed: the kernel refused the module") == true)
    }

    @Test func status_inTransition_isHotpatchPendingWithTheBlockingTasks() {
        let blocking = [BlockingTask(pid: ProcessID(812), tid: ThreadID(815), command: "kworker/0:1")]
        let outcome = KernelOutcome.inTransition(patch: "lp2", blocking: blocking, seconds: 61)
        let kernel = KernelLivePatching.status(kernel: runningKernel(), decision: .apply(fix(2, "lp2"), replacing: ["lp1"]), outcome: outcome)
        #expect(kernel.state == .inTransition)
        #expect(kernel.transitionSeconds == 61)
        #expect(kernel.blocking == [.init(pid: 812, tid: 815, comm: "kworker/0:1")])
        let status = StatusBuilder.status(facts(kernel: kernel))
        #expect(status.verdict == .hotpatchPending)
        #expect(status.reasons.map(\.message) == ["kernel 6.1.0-57-amd64: B1-hp2 level 2 (lp2) in transition for 61 s, blocked by kworker/0:1 (pid 812, tid 815)"])
        #expect(ControlText.status(status).contains("  kernel:     6.1.0-57-amd64: B1-hp2 level 2 (lp2) in transition for 61 s, blocked by kworker/0:1 (pid 812, tid 815)\n"))
    }

    @Test func status_kernelQuarantineOfAnOfferedRelease_isExposed() {
        let release = HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp1", baseline: "B1", level: 1, targets: []), description: "", cves: [],
                                      kernel: [module("lp1")])
        let channel = VerifiedChannel(version: 1, expires: .distantFuture, releases: [.hotpatch(release)], keyFingerprint: "ab", indexSHA256: "cd")
        let kernel = AgentStatus.Kernel(release: "6.1.0-57-amd64", buildId: "5757", state: .none)
        let key = KernelLivePatching.quarantineKey(id: "B1-hp1", kernel: "5757")
        let status = StatusBuilder.status(facts(kernel: kernel, quarantined: [key: "1 kernel oops(es)"], channel: channel))
        #expect(status.verdict == .exposed)
        #expect(status.reasons.map(\.message) == ["kernel live patch of hotpatch B1-hp1 quarantined for this kernel (agentctl apply B1-hp1 to retry): 1 kernel oops(es)"])
    }

    // MARK: Quarantine for one kernel

    @Test func desiredForKernel_passesOverLevelsQuarantinedForThisKernel() {
        let levels = (1...3).map { HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp\($0)", baseline: "B1", level: $0, targets: []),
                                                   description: "", cves: [], kernel: [module("lp\($0)")]) }
        let quarantined = [KernelLivePatching.quarantineKey(id: "B1-hp3", kernel: "5757"): "oops",
                           KernelLivePatching.quarantineKey(id: "B1-hp2", kernel: "9999"): "oops on another kernel"]
        let forKernel = KernelLivePatching.quarantinedForKernel(quarantined, kernel: "5757")
        #expect(forKernel == ["B1-hp3"])
        #expect(KernelLivePatching.desiredForKernel(levels[2].hotpatch, releases: levels, quarantined: forKernel)?.id == "B1-hp2")
        #expect(KernelLivePatching.desiredForKernel(levels[1].hotpatch, releases: levels, quarantined: forKernel)?.id == "B1-hp2")
    }

    @Test func apply_liftsTheKernelQuarantineOfThatRelease() throws {
        let release = HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp1", baseline: "B1", level: 1, targets: []), description: "", cves: [])
        let channel = VerifiedChannel(version: 1, expires: .distantFuture, releases: [.hotpatch(release)], keyFingerprint: "ab", indexSHA256: "cd")
        var state = AgentState()
        state.quarantined = [KernelLivePatching.quarantineKey(id: "B1-hp1", kernel: "5757"): "oops", "B1-hp10@kernel:5757": "other"]
        let decision = try AdminCommands.decide(.apply(id: "B1-hp1"), state: state, channel: channel)
        #expect(decision.state.quarantined == ["B1-hp10@kernel:5757": "other"])
        #expect(decision.answer.contains("released"))
    }

    // MARK: Journal and metrics

    @Test func events_replacingAnotherLevel_isKernelReplacedWithTheKernelFields() {
        let decision = KernelDecision.apply(fix(2, "lp2"), replacing: ["lp1"])
        let outcome = KernelOutcome.applied(fix(2, "lp2"), seconds: 1.25, unexpectedTaint: KernelTaint(mask: 0))
        let status = KernelLivePatching.status(kernel: runningKernel(), decision: decision, outcome: outcome)
        let events = KernelLivePatching.events(decision: decision, outcome: outcome, status: status)
        #expect(events.map(\.event) == [.kernelReplaced])
        let fields = Dictionary(uniqueKeysWithValues: events[0].metadata.map { (JournalFields.fieldName(forKey: $0.key), $0.value) })
        #expect(fields == ["HOTPATCH_KERNEL_RELEASE": "6.1.0-57-amd64", "HOTPATCH_KERNEL_BUILD_ID": "5757", "HOTPATCH_ID": "B1-hp2",
                           "HOTPATCH_LIVEPATCH": "lp2"])
        #expect(events[0].message == "Kernel live patch lp2 from B1-hp2 level 2 replaced lp1 on kernel 6.1.0-57-amd64 in 1.2 s")
        #expect(events[0].historyEntry(time: "t")?.event == "kernel-replaced")
    }

    @Test func events_eachOutcomeHasItsOwnEvent() {
        let cases: [(KernelDecision, KernelOutcome, JournalEvent?)] = [
            (.apply(fix(1, "lp1"), replacing: []), .applied(fix(1, "lp1"), seconds: 1, unexpectedTaint: KernelTaint(mask: 0)), .kernelApplied),
            (.revert(["lp1"]), .reverted(["lp1"], seconds: 1), .kernelReverted),
            (.apply(fix(1, "lp1"), replacing: []), .failed(fix(1, "lp1"), .transitionStalled(blocking: [], seconds: 180, signalled: false)), .kernelStalled),
            (.apply(fix(1, "lp1"), replacing: []), .failed(fix(1, "lp1"), .loadRefused(errno: EPERM)), .kernelFailed),
            (.notApplicable(fix(1, "lp1"), .signatureEnforced), .notApplicable(fix(1, "lp1"), .signatureEnforced), .kernelNotApplicable),
            (.inForce(fix(1, "lp1")), .unchanged(.inForce(fix(1, "lp1"))), nil),
        ]
        for (decision, outcome, expected) in cases {
            let status = KernelLivePatching.status(kernel: runningKernel(), decision: decision, outcome: outcome)
            #expect(KernelLivePatching.events(decision: decision, outcome: outcome, status: status).map(\.event) == (expected.map { [$0] } ?? []),
                    "\(outcome)")
        }
    }

    @Test func metrics_writeTheKernelLevelAndTransitionState() {
        var status = StatusBuilder.status(facts(kernel: .init(release: "6.1.0-57-amd64", buildId: "5757", state: .applied,
                                                              hotpatch: "B1-hp2", level: 2, livepatch: "lp2")))
        var text = MetricsWriter.render(status, now: Date(timeIntervalSince1970: 0))
        #expect(text.contains("\nhotpatch_kernel_level{release=\"6.1.0-57-amd64\"} 2\n"))
        #expect(text.contains("\nhotpatch_kernel_in_transition{release=\"6.1.0-57-amd64\"} 0\n"))
        #expect(text.contains("\nhotpatch_kernel_state{state=\"applied\"} 1\n"))
        status.kernel?.state = .inTransition
        text = MetricsWriter.render(status, now: Date(timeIntervalSince1970: 0))
        #expect(text.contains("\nhotpatch_kernel_level{release=\"6.1.0-57-amd64\"} 0\n"))
        #expect(text.contains("\nhotpatch_kernel_in_transition{release=\"6.1.0-57-amd64\"} 1\n"))
        #expect(text.contains("\nhotpatch_kernel_state{state=\"in-transition\"} 1\n"))
    }

    // MARK: Capability

    @Test func hasSysModule_readsBit16OfCapEff() {
        #expect(KernelLivePatching.hasSysModule(procStatus: "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n"))
        #expect(!KernelLivePatching.hasSysModule(procStatus: "CapPrm:\t000001ffffffffff\nCapEff:\t0000000000080000\n"))
        #expect(KernelLivePatching.hasSysModule(procStatus: "CapEff:\t0000000000010000\n"))
        #expect(!KernelLivePatching.hasSysModule(procStatus: "Name:\tx\n"))
    }

    // MARK: One cycle on a kernel tree of files

    /// A kernel tree under a temporary root: this machine's `/sys/kernel/notes` (its real
    /// build-id), a release, and module and live patch support as asked.
    private func kernelTree(modules: Bool) throws -> (TemporaryDirectory, KernelPaths) {
        let directory = try TemporaryDirectory()
        let paths = KernelPaths(root: directory.path)
        for folder in ["sys/kernel", "proc/sys/kernel"] {
            try FileManager.default.createDirectory(atPath: paths.path(folder), withIntermediateDirectories: true)
        }
        try Data(contentsOf: URL(fileURLWithPath: "/sys/kernel/notes")).write(to: URL(fileURLWithPath: paths.notes))
        try "6.1.0-57-amd64\n".write(toFile: paths.osRelease, atomically: true, encoding: .utf8)
        try "0\n".write(toFile: paths.tainted, atomically: true, encoding: .utf8)
        if modules {
            try "".write(toFile: paths.modules, atomically: true, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: paths.livePatches, withIntermediateDirectories: true)
        }
        return (directory, paths)
    }

    @Test func run_withoutCapSysModule_loadsNothingAndSaysWhy() throws {
        let (directory, paths) = try kernelTree(modules: true)
        defer { directory.remove() }
        let buildID = try #require(try RunningKernel.read(paths).buildID)
        var patch = module("lp1")
        patch.buildID = buildID
        let release = HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp1", baseline: "B1", level: 1, targets: []), description: "", cves: [],
                                      kernel: [patch])
        let result = KernelLivePatching.run(desired: release.hotpatch, releases: [release], skipping: [], quarantined: [:], notRetrying: nil,
                                            paths: paths, stallSeconds: 1, mayLoadModules: false)
        #expect(result.status?.state == .notApplicable)
        #expect(result.status?.reason == KernelLivePatching.missingCapabilityReason)
        #expect(result.status?.buildId == buildID.description)
        #expect(result.events.map(\.event) == [.kernelNotApplicable])
        #expect(try FileManager.default.contentsOfDirectory(atPath: paths.livePatches).isEmpty)
    }

    @Test func run_whenUnenrolledOrNoRelease_isNothingToDoAndAddsNoReason() throws {
        let (directory, paths) = try kernelTree(modules: false)
        defer { directory.remove() }
        let release = HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp1", baseline: "B1", level: 1, targets: []), description: "", cves: [],
                                      kernel: [module("lp1")])  // for another build-id
        for desired in [nil, release.hotpatch] {
            let result = KernelLivePatching.run(desired: desired, releases: [release], skipping: [], quarantined: [:], notRetrying: nil,
                                                paths: paths, stallSeconds: 1, mayLoadModules: true)
            #expect(result.status?.state == .notApplicable)
            #expect(result.status?.hotpatch == nil)
            #expect(result.events.isEmpty)
            #expect(KernelLivePatching.reason(result.status) == nil)
        }
    }

    @Test func liveTransition_whileACycleWaits_namesTheLevelAndTheBlockingTasks() throws {
        let (directory, paths) = try kernelTree(modules: true)
        defer { directory.remove() }
        let buildID = try #require(try RunningKernel.read(paths).buildID)
        var patch = module("lp2")
        patch.buildID = buildID
        let release = HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp2", baseline: "B1", level: 2, targets: []), description: "", cves: [],
                                      kernel: [patch])
        #expect(KernelLivePatching.liveTransition(releases: [release], paths: paths, since: Date()) == nil)
        let folder = paths.livePatch("lp2"), task = paths.path("proc/812/task/815")
        for made in [folder, task] { try FileManager.default.createDirectory(atPath: made, withIntermediateDirectories: true) }
        try "1\n".write(toFile: folder + "/enabled", atomically: true, encoding: .utf8)
        try "1\n".write(toFile: folder + "/transition", atomically: true, encoding: .utf8)
        try "0\n".write(toFile: task + "/patch_state", atomically: true, encoding: .utf8)
        try "reader\n".write(toFile: task + "/comm", atomically: true, encoding: .utf8)

        let live = try #require(KernelLivePatching.liveTransition(releases: [release], paths: paths, since: Date(timeIntervalSinceNow: -5)))
        #expect(live.state == .inTransition)
        #expect(live.hotpatch == "B1-hp2")
        #expect(live.level == 2)
        #expect(live.livepatch == "lp2")
        #expect(live.blocking == [.init(pid: 812, tid: 815, comm: "reader")])
        #expect((live.transitionSeconds ?? 0) >= 5)
    }
}
