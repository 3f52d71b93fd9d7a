import Artifact
import Foundation
import LinuxSystem
import Synchronization

/// Brings every process on the host that maps a targeted object to the desired hotpatch level,
/// spreading processes over a few tracer threads (one Patcher each, since ptrace requests must come
/// from the thread that attached).
public final class HostPatcher: Sendable {
    private struct Worker: @unchecked Sendable {
        let thread: TracerThread
        let patcher: Patcher
    }
    private let workers: [Worker]
    /// Shared facts about mapped files (build-ids, exports), read once per file.
    public let cache: ObjectCache
    /// The options every worker uses.
    public let options: PatchOptions

    /// The default number of tracer threads: two per CPU. A worker spends most of a patch waiting
    /// for its tracee to reach a stop (each injected call is two such round trips), and a blocked
    /// waiter frees its CPU, so a second worker per CPU overlaps those waits: 1,000 idle processes
    /// took 584 ms with 2 workers and 263 ms with 4 on 2 CPUs (docs/PERFORMANCE.md, run 5).
    public static var defaultWorkerCount: Int { 2 * max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Starts `workers` tracer threads (default: `defaultWorkerCount`).
    public init(workers: Int = HostPatcher.defaultWorkerCount, options: PatchOptions = PatchOptions(),
                cache: ObjectCache = ObjectCache()) {
        self.cache = cache
        self.options = options
        self.workers = (0..<max(1, workers)).map { index in
            Worker(thread: TracerThread(name: "hotpatch-tracer-\(index)"), patcher: Patcher(options: options, cache: cache))
        }
    }

    deinit { workers.forEach { $0.thread.shutdown() } }

    /// The processes (among `pids`, default all) that map an object some hotpatch in `hotpatches`
    /// targets.
    public func matches(for hotpatches: [Hotpatch], among pids: [ProcessID]? = nil) -> [TargetMatch] {
        let buildIDs = Set(hotpatches.flatMap { $0.targets.map(\.buildID) })
        return TargetFinder(cache: cache).find(buildIDs: buildIDs, among: pids)
    }

    /// Reconciles each match to `desired` (nil: no hotpatch), replacing or removing the jumps of any
    /// level in `known`. Returns one report per match, in the order of `matches`.
    public func reconcile(_ matches: [TargetMatch], desired: Hotpatch?, known: [Hotpatch]) -> [ProcessPatchReport] {
        guard !matches.isEmpty else { return [] }
        let next = Atomic<Int>(0)
        let results = Mutex<[Int: ProcessPatchReport]>([:])
        let group = DispatchGroup()
        for worker in workers.prefix(matches.count) {
            group.enter()
            worker.thread.submit {
                while true {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < matches.count else { break }
                    let match = matches[index]
                    let target = desired?.targets.first { $0.buildID == match.object.buildID }
                    let others = known.flatMap(\.targets).filter { $0.buildID == match.object.buildID }
                    let report = worker.patcher.reconcile(match, desired: target, known: others)
                    results.withLock { $0[index] = report }
                }
                group.leave()
            }
        }
        group.wait()
        return results.withLock { collected in (0..<matches.count).map { collected[$0]! } }
    }
}
