import AgentProtocol
@testable import Artifact
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing
@testable import AgentCore
@testable import Engine

/// A kernel's live patch machinery played on a tree of files: `/sys/kernel/livepatch/NAME/{enabled,
/// transition,signal}`, `/proc/modules`, `/proc/PID/task/TID/patch_state`, the taint mask. It
/// follows the kernel's rules as far as the agent can see them (one transition at a time, each
/// task switching unless it sleeps in a function the patch changes, atomic replace removing the
/// other patches' folders when the transition completes, `enabled` = 0 reversing a transition
/// under way, a module unloadable only once its folder is gone, the fake signal waking an
/// interruptible sleeper), one step each time the patcher pauses. What the real kernel does is
/// proven under qemu (packaging/kernel-e2e); this tests the agent's decisions without root.
final class SimulatedKernel: KernelModuleControl, @unchecked Sendable {
    /// A task of the simulated kernel.
    struct Task {
        var pid: Int32
        var tid: Int32
        var comm: String
        /// It sleeps in a function the patch in transition changes, so it cannot switch.
        var sleepsInPatchedCode = false
        /// Its sleep is interruptible: the fake signal makes it leave the function and switch.
        var interruptible = false
        /// Once switched to the patch, it sleeps in a function the patch brings: it cannot switch back.
        var sleepsInNewCode = false
    }

    struct Patch {
        var name: String
        var enabled: Bool
        var inTransition: Bool
    }

    let directory: TemporaryDirectory
    let paths: KernelPaths
    let buildID = BuildID(bytes: (0..<20).map { UInt8(0x40 + $0) })
    private let lock = NSLock()
    private var patches: [Patch] = []
    private var modules: [String] = []
    private var taskStates: [Int32: Int] = [:]
    private var goal = -1
    private var taint: UInt64 = 0
    private(set) var loads: [String] = []
    private(set) var signals = 0
    /// The tasks (a test changes them to block or release a transition).
    var tasks: [Task] = [Task(pid: 1, tid: 1, comm: "init"), Task(pid: 230, tid: 230, comm: "sshd")]
    /// The livepatch name each module file declares (its `.modinfo`), by path.
    var moduleNames: [String: String] = [:]
    /// An errno finit_module answers instead of loading.
    var refuseLoads: Int32?
    /// Whether patch folders have a `signal` attribute (kernels 4.15 to 5.0).
    var offersSignal = false
    /// The taint flags a load adds (O, E, K by design; add W to play a warning).
    var taintAddedByLoad: UInt64 = 1 << 12 | 1 << 13 | 1 << 15

    init() throws {
        directory = try TemporaryDirectory(prefix: "simulated-kernel")
        paths = KernelPaths(root: directory.path)
        try write("proc/sys/kernel/osrelease", "6.1.0-57-amd64\n")
        try write("sys/kernel/notes", bytes: Self.notes(buildID: buildID.bytes))
        try write("proc/sys/kernel/modules_disabled", "0\n")
        try write("sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
        try write("sys/module/module/parameters/sig_enforce", "N\n")
        try FileManager.default.createDirectory(atPath: paths.livePatches, withIntermediateDirectories: true)
        try sync()
    }

    deinit { directory.remove() }

    /// A module file in the tree declaring live patch `name`.
    func moduleFile(_ name: String) throws -> String {
        let path = directory.file("store/\(name).ko")
        try write("store/\(name).ko", "\u{7f}ELF module \(name)")
        moduleNames[path] = name
        return path
    }

    func write(_ relative: String, _ text: String) throws { try write(relative, bytes: Array(text.utf8)) }

    func write(_ relative: String, bytes: [UInt8]) throws {
        let path = directory.file(relative)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        // Through the system layer: Foundation's Data.write touches the process's umask, which
        // tests running in parallel would race on.
        try Files.writeAtomically(path, bytes: bytes, mode: 0o644)
    }

    /// The loaded modules and live patch folders, as a test reads them.
    var loadedModules: [String] { lock.withLock { modules } }
    var livePatchFolders: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: paths.livePatches)) ?? []).sorted() }

    // MARK: KernelModuleControl

    func load(_ file: borrowing OpenFile) throws(SystemError) {
        let path = file.path
        let result: Int32? = lock.withLock {
            if let refuseLoads { return refuseLoads }
            guard let name = moduleNames[path] else { return ENOEXEC }
            if modules.contains(name) { return EEXIST }
            if patches.contains(where: \.inTransition) { return EBUSY }
            loads.append(name)
            modules.append(name)
            taint |= taintAddedByLoad
            patches.append(Patch(name: name, enabled: true, inTransition: true))
            startTransition(goal: 1)
            return nil
        }
        if let result { throw SystemError(call: "finit_module", errno: result, subject: path) }
        try? sync()
    }

    func unload(_ name: String) throws(SystemError) {
        let result: Int32? = lock.withLock {
            guard let index = modules.firstIndex(of: name) else { return ENOENT }
            if patches.contains(where: { $0.name == name }) { return EBUSY }
            modules.remove(at: index)
            return nil
        }
        if let result { throw SystemError(call: "delete_module", errno: result, subject: name) }
        try? sync()
    }

    func writeAttribute(_ text: String, to path: String) throws(SystemError) {
        let folder = (path as NSString).deletingLastPathComponent, attribute = (path as NSString).lastPathComponent
        let name = (folder as NSString).lastPathComponent
        let result: Int32? = lock.withLock {
            guard folder == paths.livePatch(name), let index = patches.firstIndex(where: { $0.name == name }) else { return ENOENT }
            switch (attribute, text) {
            case ("enabled", "0"):
                guard patches[index].enabled else { return EINVAL }
                patches[index].enabled = false
                if patches[index].inTransition {
                    goal = 0  // reversed: the tasks that switched go back
                } else {
                    patches[index].inTransition = true
                    startTransition(goal: 0, from: 1)
                }
            case ("signal", "1") where offersSignal && patches[index].inTransition:
                signals += 1
                for task in tasks.indices where tasks[task].interruptible { tasks[task].sleepsInPatchedCode = false }
            default:
                return EINVAL
            }
            return nil
        }
        if let result { throw SystemError(call: "write", errno: result, subject: path) }
        try? sync()
    }

    /// One step of the kernel: every task that can switches; a transition whose tasks all switched completes.
    func pause(microseconds: UInt64) {
        lock.withLock {
            guard let index = patches.firstIndex(where: \.inTransition) else { return }
            for task in tasks where !task.sleepsInPatchedCode && !(task.sleepsInNewCode && taskStates[task.tid] == 1) {
                taskStates[task.tid] = goal
            }
            guard tasks.allSatisfy({ taskStates[$0.tid] == goal }) else { return }
            patches[index].inTransition = false
            taskStates = [:]
            if goal == 1 {
                let name = patches[index].name
                patches.removeAll { $0.name != name }  // atomic replace
            } else {
                patches.remove(at: index)
            }
            goal = -1
        }
        try? sync()
        Monotonic.sleep(microseconds: min(microseconds, 20_000))
    }

    private func startTransition(goal: Int, from start: Int = 0) {
        self.goal = goal
        for task in tasks { taskStates[task.tid] = start }
    }

    /// Writes the state as the kernel shows it.
    private func sync() throws {
        let (patches, modules, taskStates, taint, tasks, offersSignal) = lock.withLock {
            (self.patches, self.modules, self.taskStates, self.taint, self.tasks, self.offersSignal)
        }
        for name in livePatchFolders where !patches.contains(where: { $0.name == name }) {
            try FileManager.default.removeItem(atPath: paths.livePatch(name))
        }
        for patch in patches {
            try write("sys/kernel/livepatch/\(patch.name)/enabled", patch.enabled ? "1\n" : "0\n")
            try write("sys/kernel/livepatch/\(patch.name)/transition", patch.inTransition ? "1\n" : "0\n")
            if offersSignal { try write("sys/kernel/livepatch/\(patch.name)/signal", "") }
        }
        try write("proc/modules", modules.map { "\($0) 16384 0 - Live 0x0000000000000000 (OEK)\n" }.joined())
        try write("proc/sys/kernel/tainted", "\(taint)\n")
        for task in tasks {
            try write("proc/\(task.pid)/task/\(task.tid)/comm", task.comm + "\n")
            try write("proc/\(task.pid)/task/\(task.tid)/patch_state", "\(taskStates[task.tid] ?? -1)\n")
        }
    }

    /// `/sys/kernel/notes` holding a GNU build-id note.
    static func notes(buildID: [UInt8]) -> [UInt8] {
        func word(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        return word(4) + word(UInt32(buildID.count)) + word(3) + Array("GNU\0".utf8) + buildID
    }
}

/// One kernel cycle of the agent (`KernelLivePatching.run`, what `Agent.reconcileKernel` runs off
/// the actor) against `SimulatedKernel`: apply, replace, a transition held up by a task, the stall
/// handling (signal where the kernel offers it, else revert), not-applicable reasons, a refused
/// load, and the quarantine after a health signal.
@Suite struct KernelCycleTests {
    private func release(_ level: Int, module path: String, name: String, kernel: SimulatedKernel, buildID: BuildID? = nil) -> HotpatchRelease {
        let patch = KernelLivePatch(kernelRelease: "6.1.0-57-amd64", buildID: buildID ?? kernel.buildID, livepatchName: name,
                                    modulePath: path, moduleSHA256: String(repeating: "0", count: 64))
        return HotpatchRelease(hotpatch: Hotpatch(id: "B1-hp\(level)", baseline: "B1", level: level, targets: []),
                               description: "", cves: [], kernel: [patch])
    }

    private func cycle(_ kernel: SimulatedKernel, desired: HotpatchRelease?, releases: [HotpatchRelease], quarantined: [String: String] = [:],
                       notRetrying: String? = nil, stallSeconds: Double = 0.3) -> KernelCycleResult {
        KernelLivePatching.run(desired: desired?.hotpatch, releases: releases, skipping: Set(quarantined.keys), quarantined: quarantined,
                               notRetrying: notRetrying, paths: kernel.paths, stallSeconds: stallSeconds, mayLoadModules: true,
                               control: kernel)
    }

    @Test func cycle_withAFixForThisKernel_loadsItAndReportsItApplied() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.loads == ["klp_l1"])
        #expect(kernel.livePatchFolders == ["klp_l1"])
        #expect(result.status?.state == .applied)
        #expect(result.status?.level == 1)
        #expect(result.status?.buildId == kernel.buildID.description)
        #expect(result.events.map(\.event) == [.kernelApplied])
        #expect(result.quarantine == nil)
        // The next cycle finds it in force and loads nothing.
        let again = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.loads == ["klp_l1"])
        #expect(again.status?.state == .applied)
        #expect(again.events.isEmpty)
    }

    @Test func cycle_nextLevel_replacesTheOldOneInOneTransitionAndUnloadsIt() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        let l2 = release(2, module: try kernel.moduleFile("klp_l2"), name: "klp_l2", kernel: kernel)
        _ = cycle(kernel, desired: l1, releases: [l1])
        let result = cycle(kernel, desired: l2, releases: [l1, l2])
        #expect(kernel.livePatchFolders == ["klp_l2"])
        #expect(kernel.loadedModules == ["klp_l2"])
        #expect(result.status?.state == .applied)
        #expect(result.status?.level == 2)
        #expect(result.events.map(\.event) == [.kernelReplaced])
    }

    @Test func cycle_whenATaskBlocksTheTransitionPastTheStallTime_revertsItNamesTheTaskAndKeepsTheLevelInForce() throws {
        let kernel = try SimulatedKernel()
        let l2 = release(2, module: try kernel.moduleFile("klp_l2"), name: "klp_l2", kernel: kernel)
        let l3 = release(3, module: try kernel.moduleFile("klp_l3"), name: "klp_l3", kernel: kernel)
        _ = cycle(kernel, desired: l2, releases: [l2])
        kernel.tasks.append(.init(pid: 812, tid: 812, comm: "cat", sleepsInPatchedCode: true))
        let result = cycle(kernel, desired: l3, releases: [l2, l3])
        #expect(kernel.loads == ["klp_l2", "klp_l3"])
        #expect(kernel.livePatchFolders == ["klp_l2"])
        #expect(kernel.loadedModules == ["klp_l2"])
        #expect(kernel.signals == 0)
        let status = try #require(result.status)
        #expect(status.state == .failed)
        #expect(status.hotpatch == "B1-hp3")
        let reason = try #require(status.reason)
        #expect(reason.contains("the transition stalled for"))
        #expect(reason.contains("blocked by cat (pid 812, tid 812)"))
        #expect(reason.contains("the kernel has no signal attribute"))
        #expect(reason.hasSuffix("klp_l2 from B1-hp2 level 2 remains in force"))
        #expect(KernelLivePatching.reason(status)?.verdict == .exposed)
        #expect(result.events.map(\.event) == [.kernelStalled])
        #expect(result.events.first?.metadata["hotpatch.kernel.blocking"] == "cat (pid 812, tid 812)")
        #expect(Double(result.events.first?.metadata["hotpatch.kernel.transition_seconds"] ?? "") ?? 0 >= 0.6)
        #expect(result.failedAttempt == KernelLivePatching.quarantineKey(id: "B1-hp3", kernel: kernel.buildID.description))
        #expect(result.quarantine == nil)
        // Not loaded again with the same channel.
        let again = cycle(kernel, desired: l3, releases: [l2, l3], notRetrying: result.failedAttempt)
        #expect(kernel.loads == ["klp_l2", "klp_l3"])
        #expect(again.status?.state == .failed)
    }

    @Test func cycle_whenTheKernelOffersTheSignalAttribute_signalsTheBlockingTaskAndTheTransitionCompletes() throws {
        let kernel = try SimulatedKernel()
        kernel.offersSignal = true
        kernel.tasks.append(.init(pid: 812, tid: 813, comm: "reader", sleepsInPatchedCode: true, interruptible: true))
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.signals == 1)
        #expect(result.status?.state == .applied)
        #expect(kernel.livePatchFolders == ["klp_l1"])
    }

    @Test func cycle_whenTheSignalDoesNotFreeAKillableSleeper_revertsAndSaysItSignalled() throws {
        let kernel = try SimulatedKernel()
        kernel.offersSignal = true
        kernel.tasks.append(.init(pid: 812, tid: 813, comm: "reader", sleepsInPatchedCode: true, interruptible: false))
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.signals == 1)
        #expect(kernel.livePatchFolders.isEmpty)
        #expect(kernel.loadedModules.isEmpty)
        #expect(result.status?.state == .failed)
        #expect(result.status?.reason?.contains("the blocking tasks were sent the fake signal through sysfs") == true)
        #expect(result.status?.reason?.hasSuffix("no live patch of ours is in force") == true)
    }

    @Test func cycle_whenTheRevertOfAStalledApplyAlsoStalls_failsNamingBothAndNeverLoadsTheFixAgain() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        kernel.tasks.append(.init(pid: 812, tid: 812, comm: "cat", sleepsInPatchedCode: true))
        kernel.tasks.append(.init(pid: 900, tid: 901, comm: "reader", sleepsInNewCode: true))
        let key = KernelLivePatching.quarantineKey(id: "B1-hp1", kernel: kernel.buildID.description)
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.livePatchFolders == ["klp_l1"])  // still reversing
        let status = try #require(result.status)
        #expect(status.state == .failed)
        let reason = try #require(status.reason)
        #expect(reason.contains("blocked by cat (pid 812, tid 812)"))
        #expect(reason.contains("its revert is itself still in transition (blocked by reader (pid 900, tid 901))"))
        #expect(result.events.map(\.event) == [.kernelStalled])
        #expect(result.failedAttempt == key)
        // The next cycles follow the reversal, keeping the failure so the fix is not loaded again.
        let following = cycle(kernel, desired: l1, releases: [l1], notRetrying: result.failedAttempt)
        #expect(following.status?.state == .inTransition)
        #expect(KernelLivePatching.reason(following.status)?.verdict == .hotpatchPending)
        #expect(following.failedAttempt == key)
        kernel.tasks[3].sleepsInNewCode = false
        let reverted = cycle(kernel, desired: l1, releases: [l1], notRetrying: following.failedAttempt)
        #expect(kernel.livePatchFolders.isEmpty)
        #expect(kernel.loadedModules.isEmpty)
        #expect(reverted.events.map(\.event) == [.kernelReverted])
        #expect(reverted.status?.state == .failed)
        #expect(reverted.status?.hotpatch == "B1-hp1")
        #expect(reverted.failedAttempt == key)
        let after = cycle(kernel, desired: l1, releases: [l1], notRetrying: reverted.failedAttempt)
        #expect(kernel.loads == ["klp_l1"])
        #expect(after.status?.state == .failed)
        #expect(after.failedAttempt == key)
    }

    @Test func cycle_followingOurTransitionThatCompletes_reportsItApplied() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        // A transition begun before the agent (re)started.
        try kernel.load(try OpenFile(path: try kernel.moduleFile("klp_l1"), flags: O_RDONLY))
        #expect(cycle(kernel, desired: l1, releases: [l1]).status?.state == .applied)
        #expect(kernel.loads == ["klp_l1"])
    }

    @Test func cycle_followingOurTransitionThatStallsThroughBothWaits_revertsItAndDoesNotLoadItAgain() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        // A transition begun before the agent (re)started, held up by a task.
        kernel.tasks.append(.init(pid: 812, tid: 815, comm: "reader", sleepsInPatchedCode: true))
        try kernel.load(try OpenFile(path: try kernel.moduleFile("klp_l1"), flags: O_RDONLY))
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.livePatchFolders.isEmpty)
        #expect(kernel.loadedModules.isEmpty)
        let status = try #require(result.status)
        #expect(status.state == .failed)
        #expect(status.reason?.contains("the transition stalled for") == true)
        #expect(status.reason?.contains("blocked by reader (pid 812, tid 815)") == true)
        #expect(status.reason?.hasSuffix("no live patch of ours is in force") == true)
        #expect(KernelLivePatching.reason(status)?.verdict == .exposed)
        #expect(result.events.map(\.event) == [.kernelStalled])
        #expect(result.failedAttempt == KernelLivePatching.quarantineKey(id: "B1-hp1", kernel: kernel.buildID.description))
        let again = cycle(kernel, desired: l1, releases: [l1], notRetrying: result.failedAttempt)
        #expect(kernel.loads == ["klp_l1"])
        #expect(again.status?.state == .failed)
    }

    @Test func cycle_whenTheKernelCannotTakeTheModule_loadsNothingAndNamesEachReason() throws {
        let cases: [(String, String, String)] = [
            ("proc/sys/kernel/modules_disabled", "1\n", "module loading is disabled until the next boot (kernel.modules_disabled = 1)"),
            ("sys/kernel/security/lockdown", "none [integrity] confidentiality\n", "the kernel is locked down (integrity) and the module is not signed"),
            ("sys/module/module/parameters/sig_enforce", "Y\n", "the kernel enforces module signatures (module.sig_enforce) and the module is not signed"),
        ]
        for (file, text, reason) in cases {
            let kernel = try SimulatedKernel()
            let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
            try kernel.write(file, text)
            let result = cycle(kernel, desired: l1, releases: [l1])
            #expect(kernel.loads.isEmpty, "\(file)")
            #expect(result.status?.state == .notApplicable, "\(file)")
            #expect(result.status?.reason == reason)
            #expect(result.events.map(\.event) == [.kernelNotApplicable])
            #expect(KernelLivePatching.reason(result.status)?.verdict == .exposed)
        }
    }

    @Test func cycle_withModulesOnlyForAnotherKernelBuild_loadsNothingAndSaysSoInTheKernelStatusOnly() throws {
        let kernel = try SimulatedKernel()
        let other = BuildID(bytes: [0x56, 0x56, 0x56])
        var l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel, buildID: other)
        l1.kernel[0].kernelRelease = "6.1.0-56-amd64"
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.loads.isEmpty)
        #expect(kernel.livePatchFolders.isEmpty)
        let status = try #require(result.status)
        #expect(status.state == .notApplicable)
        #expect(status.hotpatch == nil)
        #expect(status.reason == "no live patch module for this kernel build (build-id \(kernel.buildID)) in B1-hp1 (level 1): "
            + "the modules there are for 6.1.0-56-amd64 (build-id 565656); nothing loaded")
        #expect(result.events.map(\.event) == [.kernelNotApplicable])
        #expect(KernelLivePatching.reason(status) == nil)
    }

    @Test func cycle_withAHeldModuleForThisKernelAndTheDesiredLevelForOtherBuilds_namesOnlyTheDesiredRelease() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        var l2 = release(2, module: try kernel.moduleFile("klp_l2"), name: "klp_l2", kernel: kernel, buildID: BuildID(bytes: [0x56, 0x56, 0x56]))
        l2.kernel[0].kernelRelease = "6.1.0-56-amd64"
        let result = cycle(kernel, desired: l2, releases: [l1, l2], quarantined: ["B1-hp1": "held by the operator"])
        #expect(kernel.loads.isEmpty)
        let status = try #require(result.status)
        // Level 1 has a module for this build (held): the reason speaks of level 2's release only.
        #expect(status.reason == "no live patch module for this kernel build (build-id \(kernel.buildID)) in B1-hp2 (level 2): "
            + "the modules there are for 6.1.0-56-amd64 (build-id 565656); nothing loaded")
        #expect(status.state == .notApplicable)
    }

    @Test func cycle_whenTheKernelRefusesTheModule_reportsItsErrnoAndLoadsNothing() throws {
        let kernel = try SimulatedKernel()
        kernel.refuseLoads = ENOEXEC
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        let result = cycle(kernel, desired: l1, releases: [l1])
        #expect(kernel.loadedModules.isEmpty)
        #expect(result.status?.state == .failed)
        #expect(result.status?.reason?.hasPrefix("the kernel refused the module: ENOEXEC") == true)
        #expect(result.events.map(\.event) == [.kernelFailed])
        #expect(result.failedAttempt == KernelLivePatching.quarantineKey(id: "B1-hp1", kernel: kernel.buildID.description))
    }

    @Test func cycle_whenTheApplyAddsAWarningTaint_revertsQuarantinesForThisKernelAndFallsBack() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        let l2 = release(2, module: try kernel.moduleFile("klp_l2"), name: "klp_l2", kernel: kernel)
        _ = cycle(kernel, desired: l1, releases: [l1])
        kernel.taintAddedByLoad |= 1 << 9  // W: a warning right after the load
        let result = cycle(kernel, desired: l2, releases: [l1, l2])
        #expect(kernel.livePatchFolders.isEmpty)
        #expect(kernel.loadedModules.isEmpty)
        #expect(result.status?.state == .failed)
        #expect(result.status?.reason?.contains("new taint flags W") == true)
        let key = KernelLivePatching.quarantineKey(id: "B1-hp2", kernel: kernel.buildID.description)
        #expect(result.quarantine?.key == key)
        #expect(result.events.map(\.event) == [.kernelReplaced, .kernelFailed])
        // With level 2 quarantined for this kernel, the next cycle brings level 1 back.
        kernel.taintAddedByLoad &= ~(1 << 9)
        let fallback = cycle(kernel, desired: l2, releases: [l1, l2], quarantined: [key: "health"])
        #expect(fallback.status?.state == .applied)
        #expect(fallback.status?.level == 1)
        #expect(kernel.livePatchFolders == ["klp_l1"])
    }

    @Test func cycle_whenUnenrolled_revertsAndUnloadsOurPatch() throws {
        let kernel = try SimulatedKernel()
        let l1 = release(1, module: try kernel.moduleFile("klp_l1"), name: "klp_l1", kernel: kernel)
        _ = cycle(kernel, desired: l1, releases: [l1])
        let result = cycle(kernel, desired: nil, releases: [l1])
        #expect(kernel.livePatchFolders.isEmpty)
        #expect(kernel.loadedModules.isEmpty)
        #expect(result.status?.state == Optional(AgentStatus.Kernel.State.none))
        #expect(result.events.map(\.event) == [.kernelReverted])
    }
}
