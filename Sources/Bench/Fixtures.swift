import Artifact
import Engine
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem

/// A fixture process registered with `ChildGuard`, killed and reaped on `stop()`.
final class BenchChild {
    let process: RunningProcess
    private var slot: Int
    var pid: Int32 { process.pid }

    init(_ path: String, _ arguments: [String] = []) throws {
        process = try RunningProcess(path, arguments)
        slot = ChildGuard.add(process.pid)
    }

    /// Kills, forgets, then reaps (so the guard never kills a reused pid).
    func stop() {
        if slot >= 0 {
            kill(process.pid, SIGKILL)
            ChildGuard.remove(slot)
            slot = -1
        }
        process.stop()
    }

    deinit { stop() }
}

/// What /proc says about one process, read without waitpid (which, from a thread other than the
/// tracer, could take a ptrace stop meant for it).
struct ProcessCondition {
    var state: Character
    var tracer: ThreadID?
    var catchesSIGUSR1: Bool

    /// Nil when the process is gone.
    static func read(_ pid: Int32) -> ProcessCondition? {
        guard let status = try? ProcFS.status(of: ProcessID(pid)) else { return nil }
        let usr1 = UInt64(1) << (UInt64(SIGUSR1) - 1)
        return ProcessCondition(state: status.state, tracer: status.tracer,
                                catchesSIGUSR1: status.caughtSignals.map { $0 & usr1 != 0 } ?? false)
    }

    /// Running or sleeping, not traced by anyone, not a zombie.
    var isHealthyAndFree: Bool { (state == "S" || state == "R" || state == "D") && tracer == nil }
}

/// The benchmark's fixtures: the multi-threaded victim with its hotpatches, and the idle sleeper
/// with a level-1 hotpatch planned against its own build-id.
struct BenchFixtures {
    let victimPath: String
    let victim: VictimHotpatches
    let sleeperPath: String
    let sleeperHotpatch: Hotpatch

    init() throws {
        let builder = FixtureBuilder()
        victimPath = try builder.victim()
        victim = try VictimHotpatches(builder: builder, victimPath: victimPath)
        sleeperPath = try builder.build("sleeper.c", flags: ["-O0"])
        let level1 = try builder.patchObject("patch_level1.c")
        let plan = try RedirectionPlanner.plan(
            target: ELFFile.load(path: sleeperPath), debugFile: nil, patchObject: PatchObject(path: level1),
            replacements: [("parse_length", "parse_length_fixed"), ("banner_version", "banner_version_fixed")], references: [])
        sleeperHotpatch = Hotpatch(id: "sleeper-hp1", baseline: "bench-1", level: 1, targets: [
            HotpatchTarget(buildID: plan.buildID, pathHint: sleeperPath, patchObjectPath: level1,
                           redirections: plan.redirections, references: plan.references)])
    }
}

/// The benchmark could not produce a trustworthy figure.
struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}
