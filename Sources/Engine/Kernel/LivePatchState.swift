import Artifact
import LinuxSystem

/// One live patch the kernel holds, as `/sys/kernel/livepatch/NAME` shows it.
public struct LivePatchState: Hashable, Sendable {
    /// The patch module's name (its folder's name).
    public var name: String
    /// `enabled`: the patch is (being) applied; 0 while it is being removed.
    public var enabled: Bool
    /// `transition`: tasks are still being switched to the patch (or back from it).
    public var inTransition: Bool

    /// Complete: applied, and every task switched.
    public var isInForce: Bool { enabled && !inTransition }
}

/// A task that has not yet switched to the state a transition is heading for
/// (`/proc/PID/task/TID/patch_state` differs from it), so the transition cannot finish.
public struct BlockingTask: Hashable, Sendable, CustomStringConvertible {
    /// The process.
    public var pid: ProcessID
    /// The thread.
    public var tid: ThreadID
    /// Its command name (`comm`).
    public var command: String

    /// `comm (pid P, tid T)`.
    public var description: String { "\(command) (pid \(pid), tid \(tid))" }
}

/// What the kernel holds now: its live patches and loaded modules, read from `/sys` and `/proc`.
public struct LivePatchSnapshot: Hashable, Sendable {
    /// Every folder of `/sys/kernel/livepatch`, by name order.
    public var patches: [LivePatchState]
    /// The names of every loaded module (`/proc/modules`), including live patch modules that were
    /// disabled or replaced and are still loaded.
    public var loadedModules: Set<String>

    /// Describes a snapshot.
    public init(patches: [LivePatchState], loadedModules: Set<String>) {
        self.patches = patches
        self.loadedModules = loadedModules
    }

    /// The patch called `name`, if the kernel holds it.
    public func patch(_ name: String) -> LivePatchState? { patches.first { $0.name == name } }

    /// The patch in transition, if any (the kernel runs one transition at a time).
    public var transition: LivePatchState? { patches.first { $0.inTransition } }

    /// Reads the live patches and loaded modules under `paths`. A kernel without
    /// `/sys/kernel/livepatch` or `/proc/modules` gives an empty list for it.
    public static func read(_ paths: KernelPaths = KernelPaths()) throws(EngineError) -> LivePatchSnapshot {
        var patches: [LivePatchState] = []
        if try KernelFiles.exists(paths.livePatches) {
            let names: [String]
            do throws(SystemError) { names = try Files.list(paths.livePatches).sorted() } catch { throw .system(error) }
            for name in names {
                // A patch whose folder goes while it is read (its removal finished) is simply gone.
                guard let patch = try readPatch(name, paths: paths) else { continue }
                patches.append(patch)
            }
        }
        let modules = try KernelFiles.textIfPresent(paths.modules).map { parseModules($0) } ?? []
        return LivePatchSnapshot(patches: patches, loadedModules: modules)
    }

    /// The state of the live patch `name`, or nil when its folder is absent.
    public static func readPatch(_ name: String, paths: KernelPaths = KernelPaths()) throws(EngineError) -> LivePatchState? {
        let folder = paths.livePatch(name)
        guard let enabled = try KernelFiles.textIfPresent(folder + "/enabled"),
              let transition = try KernelFiles.textIfPresent(folder + "/transition") else { return nil }
        return LivePatchState(name: name, enabled: try flag(enabled, path: folder + "/enabled"),
                              inTransition: try flag(transition, path: folder + "/transition"))
    }

    static func flag(_ text: String, path: String) throws(EngineError) -> Bool {
        switch text {
        case "1": return true
        case "0": return false
        default: throw .malformedProcFile(path: path, reason: "'\(text)' is not 0 or 1")
        }
    }

    /// The module names of `/proc/modules` (the first word of each line).
    static func parseModules(_ text: String) -> Set<String> {
        Set(text.split(separator: "\n").compactMap { line in line.split(separator: " ").first.map(String.init) })
    }

    /// The tasks that keep the transition of `patch` from finishing: every thread whose
    /// `patch_state` is neither the state the transition heads for (1 when the patch is enabled,
    /// 0 when it is being removed) nor -1 (no transition). Threads that exit while being read are
    /// skipped. Kernel threads are listed too: they block as well.
    public static func blockingTasks(of patch: LivePatchState, paths: KernelPaths = KernelPaths()) throws(EngineError) -> [BlockingTask] {
        let target = patch.enabled ? "1" : "0"
        var blocking: [BlockingTask] = []
        for pid in numericEntries(paths.proc) {
            let taskFolder = "\(paths.proc)/\(pid)/task"
            for tid in numericEntries(taskFolder) {
                let folder = "\(taskFolder)/\(tid)"
                guard let state = try? KernelFiles.textIfPresent(folder + "/patch_state"), state != target, state != "-1" else { continue }
                let command = (try? KernelFiles.textIfPresent(folder + "/comm")) ?? nil
                blocking.append(BlockingTask(pid: ProcessID(pid), tid: ThreadID(tid), command: command ?? "?"))
            }
        }
        return blocking
    }

    /// The numeric names in `folder`, increasing; none when it cannot be listed (a process gone).
    private static func numericEntries(_ folder: String) -> [Int32] {
        ((try? Files.list(folder)) ?? []).compactMap { Int32($0) }.sorted()
    }
}
