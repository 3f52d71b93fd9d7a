import Artifact
import Glibc
import LinuxSystem

/// Why loading or removing a kernel live patch did not succeed.
public enum KernelFailure: Equatable, Sendable, CustomStringConvertible {
    /// `finit_module` refused the module, with the kernel's errno (ENOEXEC for a module built for
    /// another kernel, EKEYREJECTED or ENOKEY for a signature the kernel does not accept, EPERM
    /// without CAP_SYS_MODULE or with loading locked, EEXIST for a name already loaded, EBUSY while
    /// another live patch is in transition).
    case loadRefused(errno: Int32)
    /// The transition did not finish within the stall time, twice, so the patch was reverted and
    /// unloaded; `blocking` are the tasks that held it up. `signalled`: between the two waits the
    /// agent wrote to the patch's `signal` attribute (kernels 4.15 to 5.0); later kernels have
    /// none and send the fake signal themselves every 15 s of a transition. `revertBlocking` is nil
    /// when the revert completed; else the revert itself ran out of time too, held up by these
    /// tasks, and the reversal is still under way (the next cycle follows it).
    case transitionStalled(blocking: [BlockingTask], seconds: Double, signalled: Bool, revertBlocking: [BlockingTask]? = nil)
    /// The patch's folder under /sys/kernel/livepatch went away during its transition (someone
    /// else disabled it).
    case vanished(patch: String)
    /// `delete_module` refused to unload a disabled patch module.
    case unloadRefused(module: String, errno: Int32)
    /// A kernel file could not be read or written, or had an unexpected shape.
    case system(EngineError)

    /// What the kernel said, for status and journal.
    public var description: String {
        switch self {
        case let .loadRefused(errno): return "the kernel refused the module: \(KernelFailure.errnoText(errno))"
        case let .transitionStalled(blocking, seconds, signalled, revertBlocking):
            func named(_ tasks: [BlockingTask]) -> String { tasks.isEmpty ? "no task named" : tasks.map(\.description).joined(separator: ", ") }
            let signal = signalled ? "the blocking tasks were sent the fake signal through sysfs"
                : "the kernel has no signal attribute and sends the fake signal itself"
            let stalled = "the transition stalled for \(Int(seconds.rounded())) s (blocked by \(named(blocking)); \(signal))"
            guard let revertBlocking else { return stalled + " and was reverted" }
            return stalled + "; its revert is itself still in transition (blocked by \(named(revertBlocking))) and is followed by the next cycles"
        case let .vanished(patch): return "live patch \(patch) disappeared during its transition"
        case let .unloadRefused(module, errno): return "the kernel refused to unload \(module): \(KernelFailure.errnoText(errno))"
        case let .system(error): return error.description
        }
    }

    /// The errno's name, what the kernel means by it when loading a module, and strerror's text.
    public static func errnoText(_ number: Int32) -> String {
        let named: [Int32: (String, String)] = [
            ENOEXEC: ("ENOEXEC", "not a module for this kernel (vermagic, or a malformed module)"),
            EKEYREJECTED: ("EKEYREJECTED", "its signature was rejected"),
            ENOKEY: ("ENOKEY", "it is signed by a key the kernel does not know"),
            EBADMSG: ("EBADMSG", "its signature is malformed"),
            EPERM: ("EPERM", "module loading is not permitted (CAP_SYS_MODULE, modules_disabled, lockdown)"),
            EEXIST: ("EEXIST", "a module of this name is already loaded"),
            EBUSY: ("EBUSY", "another live patch is in transition"),
            ENOSYS: ("ENOSYS", "the kernel has no module support"),
            EWOULDBLOCK: ("EWOULDBLOCK", "the module is in use"),
            ENOENT: ("ENOENT", "no such module, or a symbol it needs is missing"),
            EINVAL: ("EINVAL", "the kernel found the module invalid (see the kernel log)"),
        ]
        let text = String(cString: strerror(number))
        guard let (name, meaning) = named[number] else { return "\(SystemError.errnoName(number)) (\(text))" }
        return "\(name) (\(text)): \(meaning)"
    }
}

/// What happened to the kernel in one step of the agent's cycle.
public enum KernelOutcome: Equatable, Sendable {
    /// The fix's module is loaded and its transition complete, after `seconds`; `unexpectedTaint`
    /// holds taint flags the load added beyond those a live patch adds by design (empty: none).
    case applied(KernelFix, seconds: Double, unexpectedTaint: KernelTaint)
    /// These patches were disabled and their modules unloaded, after `seconds`.
    case reverted([String], seconds: Double)
    /// A transition is still under way after `seconds` (applying, or reverting a stalled one):
    /// `blocking` are the tasks that have not switched yet.
    case inTransition(patch: String, blocking: [BlockingTask], seconds: Double)
    /// Loading or removing failed; nothing of the fix stays loaded unless an `inTransition` said so.
    case failed(KernelFix?, KernelFailure)
    /// The fix cannot be loaded on this kernel.
    case notApplicable(KernelFix, KernelUnavailability)
    /// Nothing was changed: the decision needed no action (nothing to do, already in force, or
    /// another tool's transition under way).
    case unchanged(KernelDecision)
}

/// The kernel's health signals the agent compares before and after a patch: the taint mask and,
/// where the kernel counts them, oopses.
public struct KernelHealth: Hashable, Sendable {
    /// `/proc/sys/kernel/tainted`.
    public var taint: KernelTaint
    /// `/sys/kernel/oops_count`, where present.
    public var oopsCount: UInt64?

    /// Reads both signals under `paths`.
    public static func read(_ paths: KernelPaths = KernelPaths()) throws(EngineError) -> KernelHealth {
        KernelHealth(taint: try RunningKernel.taint(paths), oopsCount: try RunningKernel.oopsCount(paths))
    }

    /// What got worse since `earlier`, or nil: an oops, or a taint flag a live patch does not add
    /// by design (a warning W, a soft lockup L, a bad page B, …).
    public func failureSignal(since earlier: KernelHealth) -> String? {
        var signals: [String] = []
        if let now = oopsCount, let before = earlier.oopsCount, now > before { signals.append("\(now - before) kernel oops(es)") }
        let added = taint.added(since: earlier.taint).removing(.expectedFromLivePatch)
        if !added.isEmpty { signals.append("new taint flags \(added)") }
        return signals.isEmpty ? nil : signals.joined(separator: " and ")
    }
}

/// Loads, follows and removes kernel live patches: the thin shell over `finit_module`,
/// `delete_module` and `/sys/kernel/livepatch`. Every wait is bounded by `stallSeconds`.
public struct KernelPatcher: Sendable {
    /// Where the kernel's files are.
    public var paths: KernelPaths
    /// The kernel's loader and attributes (the system's; a simulated kernel in tests).
    package var control: any KernelModuleControl
    /// How long a transition may take before it counts as stalled (then once more after a fake
    /// signal, then the patch is reverted). Above 15 s by default: the kernel itself sends a fake
    /// signal to the blocking tasks every 15 s of a transition (since 5.1).
    public var stallSeconds: Double
    /// How often the live patch files are read while waiting.
    public var pollMicroseconds: UInt64

    /// A patcher for the kernel under `paths`.
    public init(paths: KernelPaths = KernelPaths(), stallSeconds: Double = 30, pollMicroseconds: UInt64 = 100_000) {
        self.init(paths: paths, control: SystemKernelModuleControl(), stallSeconds: stallSeconds, pollMicroseconds: pollMicroseconds)
    }

    /// A patcher for the kernel under `paths` driven through `control`.
    package init(paths: KernelPaths, control: any KernelModuleControl, stallSeconds: Double, pollMicroseconds: UInt64 = 100_000) {
        self.paths = paths
        self.control = control
        self.stallSeconds = stallSeconds
        self.pollMicroseconds = pollMicroseconds
    }

    /// Carries out `decision` (from `KernelPlan.decide`), then unloads our leftover modules
    /// (disabled or replaced) of `releases`.
    public func perform(_ decision: KernelDecision, releases: [HotpatchRelease], kernel: RunningKernel) -> KernelOutcome {
        let outcome: KernelOutcome
        switch decision {
        case .nothingToDo, .inForce, .waitForOtherTransition:
            outcome = .unchanged(decision)
        case let .notApplicable(fix, reason):
            outcome = .notApplicable(fix, reason)
        case let .apply(fix, _):
            outcome = apply(fix, kernel: kernel)
        case let .followTransition(fix, patch):
            outcome = follow(patch, fix: fix)
        case let .revert(names):
            outcome = revert(names)
        }
        if case .inTransition = outcome { return outcome }
        if let snapshot = try? LivePatchSnapshot.read(paths) {
            for name in KernelPlan.leftoverModules(releases: releases, kernel: kernel.buildID, snapshot: snapshot) {
                try? unloadModule(name)
            }
        }
        return outcome
    }

    /// Loads `fix`'s module from its verified store copy and follows the transition; on a stall,
    /// signals the blocking tasks where the kernel offers it, waits again, then reverts.
    public func apply(_ fix: KernelFix, kernel: RunningKernel) -> KernelOutcome {
        let start = Monotonic.now
        let name = fix.patch.livepatchName
        let before = try? KernelHealth.read(paths)
        do {
            let module = try OpenFile(path: fix.patch.modulePath, flags: O_RDONLY)
            let size = UInt64(try module.status().st_size)
            let marker = UInt64(KernelModuleInfo.signatureMarker.count)
            let tail = try (size >= marker ? module.read(at: size - marker, count: Int(marker)) : [])
            if let reason = kernel.unavailability(moduleIsSigned: KernelModuleInfo.isSigned(tail: tail)) {
                return .notApplicable(fix, reason)
            }
            // A disabled or replaced module of this name still loaded would make the load fail (EEXIST).
            let snapshot = try LivePatchSnapshot.read(paths)
            if snapshot.loadedModules.contains(name), snapshot.patch(name) == nil { try unloadModule(name) }
            do throws(SystemError) {
                try control.load(module)
            } catch {
                return .failed(fix, .loadRefused(errno: error.errno))
            }
        } catch let error as UnloadRefused {
            return .failed(fix, .unloadRefused(module: error.name, errno: error.errno))
        } catch let error as EngineError {
            return .failed(fix, .system(error))
        } catch let error as SystemError {
            return .failed(fix, .system(.system(error)))
        } catch {
            return .failed(fix, .system(.malformedProcFile(path: fix.patch.modulePath, reason: "\(error)")))
        }
        do {
            let (heldUp, signalled) = try waitWithSignal(name, removing: false)
            if heldUp == nil {
                var added = KernelTaint(mask: 0)
                if let before, let after = try? KernelHealth.read(paths) { added = after.taint.added(since: before.taint) }
                return .applied(fix, seconds: seconds(since: start), unexpectedTaint: added.removing(.expectedFromLivePatch))
            }
            return try revertStalled(name, fix: fix, since: start, signalled: signalled)
        } catch let error as VanishedPatch {
            return .failed(fix, .vanished(patch: error.name))
        } catch let error as EngineError {
            return .failed(fix, .system(error))
        } catch {
            return .failed(fix, .system(.malformedProcFile(path: paths.livePatch(name), reason: "\(error)")))
        }
    }

    /// Reverts `name`, whose forward transition towards `fix` stalled through both waits: the
    /// failure names the tasks that held it up, and those holding up the revert when it stalls too.
    private func revertStalled(_ name: String, fix: KernelFix, since start: Monotonic.Instant, signalled: Bool) throws -> KernelOutcome {
        guard let stalled = try LivePatchSnapshot.readPatch(name, paths: paths) else { return .failed(fix, .vanished(patch: name)) }
        let blocking = try LivePatchSnapshot.blockingTasks(of: stalled, paths: paths)
        let elapsed = seconds(since: start)
        switch revert([name]) {
        case .reverted:
            return .failed(fix, .transitionStalled(blocking: blocking, seconds: elapsed, signalled: signalled))
        case let .inTransition(_, revertBlocking, _):
            // Reported as the failure it is, so the fix is not loaded again while (and after) the
            // reversal is followed: else each revert ending would invite the same stalling load.
            return .failed(fix, .transitionStalled(blocking: blocking, seconds: seconds(since: start), signalled: signalled,
                                                   revertBlocking: revertBlocking))
        case let other:
            return other
        }
    }

    /// Follows a transition of `patch` already under way (towards `fix` or away from it) to its
    /// end. A forward transition (of ours: `fix`'s, or the one it was to replace) that stalls
    /// through both waits is reverted and fails as in `apply`; a reversal is followed until it ends.
    public func follow(_ patch: String, fix: KernelFix) -> KernelOutcome {
        let start = Monotonic.now
        do {
            guard let state = try LivePatchSnapshot.readPatch(patch, paths: paths) else { return .unchanged(.followTransition(fix, patch: patch)) }
            let (stalled, signalled) = try waitWithSignal(patch, removing: !state.enabled)
            if stalled == nil {
                if state.enabled { return .applied(fix, seconds: seconds(since: start), unexpectedTaint: KernelTaint(mask: 0)) }
                try unloadModule(patch)
                return .reverted([patch], seconds: seconds(since: start))
            }
            if state.enabled { return try revertStalled(patch, fix: fix, since: start, signalled: signalled) }
            let now = try LivePatchSnapshot.readPatch(patch, paths: paths) ?? state
            return .inTransition(patch: patch, blocking: try LivePatchSnapshot.blockingTasks(of: now, paths: paths),
                                 seconds: seconds(since: start))
        } catch let error as VanishedPatch {
            return .failed(fix, .vanished(patch: error.name))
        } catch let error as UnloadRefused {
            return .failed(fix, .unloadRefused(module: error.name, errno: error.errno))
        } catch let error as EngineError {
            return .failed(fix, .system(error))
        } catch {
            return .failed(fix, .system(.malformedProcFile(path: paths.livePatch(patch), reason: "\(error)")))
        }
    }

    /// Disables each patch of `names` (writing 0 to `enabled`, which also reverses a transition
    /// under way), waits until its folder goes, then unloads its module.
    public func revert(_ names: [String]) -> KernelOutcome {
        let start = Monotonic.now
        for name in names {
            do {
                if try LivePatchSnapshot.readPatch(name, paths: paths)?.enabled == true {
                    do throws(SystemError) { try control.writeAttribute("0", to: paths.livePatch(name) + "/enabled") } catch {
                        // ENOENT: its removal finished meanwhile.
                        if error.errno != ENOENT { throw EngineError.system(error) }
                    }
                }
                if let stalled = try waitWithSignal(name, removing: true).stalled {
                    return .inTransition(patch: name, blocking: try LivePatchSnapshot.blockingTasks(of: stalled, paths: paths),
                                         seconds: seconds(since: start))
                }
                try unloadModule(name)
            } catch let error as UnloadRefused {
                return .failed(nil, .unloadRefused(module: error.name, errno: error.errno))
            } catch let error as EngineError {
                return .failed(nil, .system(error))
            } catch {
                return .failed(nil, .system(.malformedProcFile(path: paths.livePatch(name), reason: "\(error)")))
            }
        }
        return .reverted(names, seconds: seconds(since: start))
    }

    // MARK: Waiting

    private struct VanishedPatch: Error { let name: String }
    private struct UnloadRefused: Error { let name: String; let errno: Int32 }

    /// Waits for the transition of `name` to end; when it stalls, writes 1 to its `signal` file
    /// where the kernel has one (4.15 to 5.0; later kernels signal by themselves every 15 s) and
    /// waits once more. Returns nil when it ended, else the stalled state; and whether it signalled.
    private func waitWithSignal(_ name: String, removing: Bool) throws -> (stalled: LivePatchState?, signalled: Bool) {
        guard try waitForTransition(name, removing: removing) != nil else { return (nil, false) }
        let signal = paths.livePatch(name) + "/signal"
        var signalled = false
        if try KernelFiles.exists(signal) {
            do throws(SystemError) {
                try control.writeAttribute("1", to: signal)
                signalled = true
            } catch {}
        }
        return (try waitForTransition(name, removing: removing), signalled)
    }

    /// Polls `name` for up to `stallSeconds`: nil once it is in force (applying) or its folder is
    /// gone (removing), else its last state. Throws `VanishedPatch` when an applied patch's folder goes.
    private func waitForTransition(_ name: String, removing: Bool) throws -> LivePatchState? {
        let deadline = Monotonic.now.adding(microseconds: UInt64(stallSeconds * 1_000_000))
        var last: LivePatchState?
        while true {
            let state = try LivePatchSnapshot.readPatch(name, paths: paths)
            if removing {
                guard let state else { return nil }
                last = state
            } else {
                guard let state else { throw VanishedPatch(name: name) }
                if state.isInForce { return nil }
                if !state.enabled { throw VanishedPatch(name: name) }
                last = state
            }
            if Monotonic.now >= deadline { return last }
            control.pause(microseconds: pollMicroseconds)
        }
    }

    /// Unloads module `name`; its reference is dropped just after its live patch folder goes, so
    /// EWOULDBLOCK/EBUSY is retried for up to a second. ENOENT (not loaded) is success.
    private func unloadModule(_ name: String) throws {
        let deadline = Monotonic.now.adding(microseconds: 1_000_000)
        while true {
            do throws(SystemError) {
                try control.unload(name)
                return
            } catch {
                if error.errno == ENOENT { return }
                guard error.errno == EWOULDBLOCK || error.errno == EBUSY, Monotonic.now < deadline else {
                    throw UnloadRefused(name: name, errno: error.errno)
                }
                control.pause(microseconds: 20_000)
            }
        }
    }

    private func seconds(since start: Monotonic.Instant) -> Double {
        Double(Monotonic.now.microseconds(since: start)) / 1_000_000
    }
}
