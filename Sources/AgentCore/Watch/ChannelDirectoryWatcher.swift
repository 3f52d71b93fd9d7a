import Artifact
import Glibc
import LinuxSystem
import Synchronization

/// Watches the channel directory with inotify and reports that its contents changed: the first
/// change at once, the rest of a burst coalesced, and the publication's commit point at once
/// (`ChangePacing`).
///
/// Only the directory itself is watched, not subdirectories: publishers (rsync, apt, config
/// management) replace `index.json` and then its signature last, and every release file is bound
/// by hash in the index, so a change that matters always shows up at the top level (the agent
/// checks again by itself while a publication it saw is incomplete). If the directory does not
/// exist yet, the nearest existing ancestor is watched until it appears.
public final class ChannelDirectoryWatcher: Sendable {
    /// The directory watched.
    public let directory: String
    private let broadcast = Broadcast<Void>(bufferingPolicy: .bufferingNewest(1))
    /// The thread closes the read end when it ends; the watcher closes the write end in its deinit,
    /// so `stop()` never writes to a closed descriptor number that may have been reused meanwhile.
    private let wakeup: WakeupChannel

    /// Events that mean the directory's contents changed.
    static let contentMask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB)
        | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ONLYDIR)
    /// Events on an ancestor that may mean the path to the directory now exists.
    static let ancestorMask = UInt32(IN_CREATE | IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)
        | UInt32(IN_ONLYDIR)

    /// Starts watching `directory`. The first change after `coalescing` without a report is reported
    /// at once; later ones are reported once `coalescing` passes without a change (or `5 × coalescing`
    /// after they began); `commitPoint` written (renamed in, or closed after writing) is reported at
    /// once, at most once per `coalescing` (see `ChangePacing`).
    ///
    /// Throws when inotify itself is unavailable (e.g. `EMFILE`: too many instances).
    public init(directory: String, coalescing: Duration = .milliseconds(200),
                commitPoint: String = ChannelVerifier.signatureFileName) throws(AgentCoreError) {
        self.directory = directory
        let inotifyFD: Int32
        let wakeup: WakeupChannel
        do throws(SystemError) {
            inotifyFD = try Inotify.create()
            do throws(SystemError) { wakeup = try WakeupChannel() } catch {
                Descriptor.close(inotifyFD)
                throw error
            }
        } catch {
            throw AgentCoreError(error)
        }
        self.wakeup = wakeup
        let loop = InotifyLoop(
            directory: directory, inotifyFD: inotifyFD, wakeup: wakeup, pacing: ChangePacing(coalescing: coalescing),
            commitPoint: Array(commitPoint.utf8), broadcast: broadcast)
        do throws(SystemError) {
            try loop.arm()
            try Threads.startDetached { loop.run() }
        } catch {
            loop.close()
            throw AgentCoreError(error)
        }
    }

    /// A stream that yields once per report of changes (and when the directory appears).
    public func changes() -> AsyncStream<Void> {
        broadcast.makeStream()
    }

    /// Stops watching and finishes every stream.
    public func stop() {
        wakeup.wake()
    }

    deinit {
        stop()
        Descriptor.close(wakeup.write)
    }
}

/// The watcher's thread: owns the descriptors and closes them when it ends.
private final class InotifyLoop: @unchecked Sendable {
    // @unchecked: after init, the mutable state is touched only by the watcher thread (arm() runs
    // once in init, before that thread starts).
    let directory: String
    let inotifyFD: Int32
    let wakeup: WakeupChannel
    var pacing: ChangePacing
    /// The name of the file whose writing completes a publication (the index's signature).
    let commitPoint: [UInt8]
    let broadcast: Broadcast<Void>
    /// The current watch and whether it is on the directory itself or on an ancestor.
    var watch: Int32 = -1
    var watchingTarget = false

    init(directory: String, inotifyFD: Int32, wakeup: WakeupChannel, pacing: ChangePacing, commitPoint: [UInt8],
         broadcast: Broadcast<Void>) {
        self.directory = directory
        self.inotifyFD = inotifyFD
        self.wakeup = wakeup
        self.pacing = pacing
        self.commitPoint = commitPoint
        self.broadcast = broadcast
    }

    /// Closes what the thread owns; the watcher's deinit closes the wake-up's write end.
    func close() {
        Descriptor.close(inotifyFD)
        Descriptor.close(wakeup.read)
    }

    /// Watches the directory, or the nearest existing ancestor when it is missing.
    ///
    /// Adding the watch first and learning from ENOENT/ENOTDIR avoids a check-then-watch race; after
    /// watching an ancestor we try the directory again in case it appeared in between.
    func arm() throws(SystemError) {
        if watch >= 0 {
            Inotify.removeWatch(inotifyFD, watch)
            watch = -1
        }
        var path = directory
        var mask = ChannelDirectoryWatcher.contentMask
        while true {
            do throws(SystemError) {
                watch = try Inotify.addWatch(inotifyFD, path: path, mask: mask)
            } catch where error.errno == ENOENT || error.errno == ENOTDIR {
                guard let parent = InotifyLoopPaths.parent(of: path) else { throw error }
                path = parent
                mask = ChannelDirectoryWatcher.ancestorMask
                continue
            }
            watchingTarget = path == directory
            if !watchingTarget, (try? Inotify.addWatch(inotifyFD, path: directory, mask: ChannelDirectoryWatcher.contentMask)) != nil {
                // It appeared between the two calls: that second watch is the one we keep.
                Inotify.removeWatch(inotifyFD, watch)
                watch = (try? Inotify.addWatch(inotifyFD, path: directory, mask: ChannelDirectoryWatcher.contentMask)) ?? -1
                watchingTarget = true
            }
            return
        }
    }

    func run() {
        defer {
            close()
            broadcast.finish()
        }
        while true {
            var timeout: Int32 = needsArm ? 1000 : -1
            if let deadline = pacing.deadline {
                let remaining = ContinuousClock.now.duration(to: deadline)
                let burstTimeout = remaining <= .zero ? 0 : Int32(clamping: remaining.milliseconds + 1)
                timeout = timeout < 0 ? burstTimeout : min(timeout, burstTimeout)
            }
            let ready: [Bool]
            do {
                ready = try Descriptor.waitReadable([inotifyFD, wakeup.read], timeoutMilliseconds: timeout, subject: directory)
            } catch {
                return
            }
            if ready[1] { return }
            var seen = ready[0] ? drain() : Seen()
            if needsArm && !ready[0] && rearm() { seen.changed = true }
            let now = ContinuousClock.now
            // Checked on every turn, so a directory that never stops changing is still reported.
            if (seen.changed && pacing.changed(at: now, committed: seen.committed)) || pacing.due(at: now) {
                broadcast.yield(())
            }
        }
    }

    /// Set when a re-arm failed unexpectedly (e.g. EACCES): retried once a second, never spun on.
    var needsArm = false

    /// Re-arms after the watched directory vanished or an ancestor changed; true when the
    /// directory has just appeared (its contents are then news).
    private func rearm() -> Bool {
        let wasWatchingTarget = watchingTarget
        do {
            try arm()
            needsArm = false
        } catch {
            needsArm = true
            watchingTarget = false
            return false
        }
        return watchingTarget && !wasWatchingTarget
    }

    /// What one read of the pending events found.
    struct Seen {
        /// Some event is a change worth reporting.
        var changed = false
        /// The commit point was written: renamed into the directory, or closed after writing.
        var committed = false
    }

    /// Reads every pending event.
    private func drain() -> Seen {
        var seen = Seen()
        var needsRearm = false
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let commitMask = UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE)
        while true {
            // nil (EAGAIN): drained; an error: nothing more to read now either.
            guard let count = try? Descriptor.read(inotifyFD, into: &buffer, subject: directory) ?? nil, count > 0 else { break }
            // struct inotify_event: int wd @0, uint32 mask @4, uint32 cookie @8, uint32 len @12,
            // then `len` bytes of NUL-padded name.
            buffer.withUnsafeBytes { bytes in
                var offset = 0
                while offset + 16 <= count {
                    let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let name = bytes[(offset + 16)..<min(offset + 16 + length, count)].prefix { $0 != 0 }
                    offset += 16 + length
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                        seen.changed = true  // Lost events: assume a change, the poller re-reads anyway.
                        continue
                    }
                    guard wd == watch else { continue }  // Left over from a watch already removed.
                    if mask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0 {
                        needsRearm = true
                        if watchingTarget { seen.changed = true }
                    } else if watchingTarget {
                        seen.changed = true
                        if mask & commitMask != 0, name.elementsEqual(commitPoint) { seen.committed = true }
                    } else {
                        needsRearm = true  // Something appeared in an ancestor: maybe our path.
                    }
                }
            }
        }
        if needsRearm && rearm() { seen.changed = true }
        return seen
    }
}

/// When the channel watcher reports changes, so that a complete publication is acted on at once
/// and a sync tool writing hundreds of files costs a bounded number of checks.
///
/// - The first change after `coalescing` without a report is reported at once (leading edge):
///   a publisher that writes the index and then its signature by rename is read as it lands.
/// - Changes that follow are one burst, reported once `coalescing` passes without a change, or
///   `5 × coalescing` after the burst began, so a writer that never stops is still noticed.
/// - The commit point (the signature, which publishers write last) is reported at once, unless it
///   was reported less than `coalescing` before; it ends the burst it belongs to.
///
/// So ordinary reports are at least `coalescing` apart, and commit-point reports too: at most two
/// reports in any `coalescing`, whatever writes the directory.
struct ChangePacing {
    /// The quiet that ends a burst, and the least time between two reports of one kind.
    let coalescing: Duration
    private var lastReport: ContinuousClock.Instant?
    private var lastCommitReport: ContinuousClock.Instant?
    /// The first and the last change not reported yet.
    private var burst: (start: ContinuousClock.Instant, last: ContinuousClock.Instant)?

    /// Pacing with this `coalescing`.
    init(coalescing: Duration) { self.coalescing = coalescing }

    /// Notes a change seen at `now` (`committed`: the commit point was written); true when it is
    /// to be reported now.
    mutating func changed(at now: ContinuousClock.Instant, committed: Bool) -> Bool {
        let quiet = burst == nil && lastReport.map { now - $0 >= coalescing } ?? true
        let commitDue = committed && lastCommitReport.map { now - $0 >= coalescing } ?? true
        if quiet || commitDue {
            lastReport = now
            if committed { lastCommitReport = now }
            burst = nil
            return true
        }
        burst = (start: burst?.start ?? now, last: now)
        return false
    }

    /// When the changes not reported yet fall due, or nil when there are none.
    var deadline: ContinuousClock.Instant? {
        guard let burst else { return nil }
        return min(burst.last + coalescing, burst.start + coalescing * 5)
    }

    /// True (once) when the changes not reported yet are due at `now`.
    mutating func due(at now: ContinuousClock.Instant) -> Bool {
        guard let deadline, now >= deadline else { return false }
        lastReport = now
        burst = nil
        return true
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    fileprivate var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Path arithmetic for climbing from a missing directory to an existing ancestor.
enum InotifyLoopPaths {
    /// The parent directory of `path`, or nil at the root.
    static func parent(of path: String) -> String? {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        if trimmed == "/" || trimmed == "." { return nil }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let parent = trimmed[..<slash]
        return parent.isEmpty ? "/" : String(parent)
    }
}
