import Glibc
import LinuxSystem
import Synchronization

/// How a running process that maps a targeted object only later (a library it `dlopen`s after
/// the hotpatch is in force) is noticed.
public enum MappingWatchMode: Sendable, Equatable {
    /// fanotify marks on the files that hold a targeted object report every open of them at once.
    case fanotify
    /// fanotify is unavailable (the reason says why): such a process is found by the next full pass.
    case scan(reason: String)

    /// The word `agentctl status --json` shows: "fanotify" or "scan" (as `processWatch` says
    /// "netlink" or "scan").
    public var statusName: String {
        switch self {
        case .fanotify: return "fanotify"
        case .scan: return "scan"
        }
    }
}

/// What the mapping watch reports.
public enum MappingEvent: Sendable, Equatable {
    /// Process `pid` opened a watched file: a loader maps it next.
    case opened(pid: ProcessID)
    /// The kernel's queue overflowed and events were lost: look at every process again.
    case overflow
}

/// Watches the files that hold a targeted object with fanotify, and reports the processes that
/// open them (a dynamic loader opens a library, then maps it).
///
/// Only opens are watched: a loader's close of the library comes after the mapping, but the
/// mapping holds the file open, so the kernel reports that close only when the library is
/// unmapped (at `dlclose` or exit), too late to be of use.
///
/// Marks are on the files themselves (inode marks), never on mounts, so the rest of the host's
/// opens cost nothing; each open of a marked file queues one small event and never
/// waits for the agent (notification class, not permission class). After each read the thread
/// pauses 5 ms, so the kernel merges a process's repeated opens into one record: an open storm
/// costs the agent a bounded number of reads, and `FollowUpSchedule` bounds the looks it causes.
/// Records name the file by handle, not by a descriptor (FAN_REPORT_FID): for a descriptor the
/// kernel would open the file anew in the agent's context for every record read, and the agent
/// would close it, which made a storm of opens by any local user cost the agent most of a CPU.
/// A file on a filesystem that cannot encode handles is marked on a second, descriptor-reporting
/// instance instead; a kernel without FAN_REPORT_FID gets that one alone. Events caused by the agent
/// itself (it reads the targets' build-ids) are dropped. Creating the instance needs
/// `CAP_SYS_ADMIN`; without it (or on a kernel without fanotify) `mode` is `.scan(reason:)`,
/// `events()` finishes at once and marking does nothing.
public final class MappingWatch: Sendable {
    /// Whether opens are reported, or why not.
    public let mode: MappingWatchMode
    private let broadcast = Broadcast<MappingEvent>(bufferingPolicy: .unbounded)
    private let wakeup: WakeupChannel?
    private let marks: MarkTable

    /// The events each marked file reports.
    static let markedEvents: Fanotify.Events = .open
    /// How long the reading thread waits after each read before it reads again. A process opening
    /// a marked file in a loop (thousands of times a second) then wakes the agent at most 200
    /// times a second, with one record per process and file; a single open is still read at once.
    static let readPauseMilliseconds: Int32 = 5

    /// Creates the fanotify instance and its reading thread; never throws, failure is reported
    /// through `mode`.
    public init() {
        do throws(SystemError) {
            let byHandle = try? Fanotify.create(reporting: .fileIDs)
            let byDescriptor: Int32
            do throws(SystemError) { byDescriptor = try Fanotify.create(reporting: .descriptors) } catch {
                if let byHandle { Descriptor.close(byHandle) }
                throw error
            }
            let marks = MarkTable(byHandle: byHandle ?? -1, byDescriptor: byDescriptor)
            let wakeup: WakeupChannel
            do throws(SystemError) { wakeup = try WakeupChannel() } catch {
                marks.close()
                throw error
            }
            let loop = FanotifyLoop(marks: marks, wakeup: wakeup, broadcast: broadcast, agent: .current)
            do throws(SystemError) { try Threads.startDetached { loop.run() } } catch {
                loop.close()
                Descriptor.close(wakeup.write)
                throw error
            }
            self.marks = marks
            self.wakeup = wakeup
            self.mode = .fanotify
        } catch {
            self.marks = MarkTable(byHandle: -1, byDescriptor: -1)
            self.wakeup = nil
            self.mode = .scan(reason: error.description)
            broadcast.finish()
        }
    }

    /// A stream of every later event; already finished when fanotify is unavailable or after `stop()`.
    public func events() -> AsyncStream<MappingEvent> {
        broadcast.makeStream()
    }

    /// Marks each of `paths` (a file that holds a targeted object; `/proc/PID/map_files/…` reaches
    /// the very file a process mapped, in whatever mount namespace it lives) that is not marked
    /// yet. Returns the paths that could not be marked, with why (gone meanwhile, unreadable).
    @discardableResult
    public func add(_ paths: [String]) -> [String: SystemError] {
        marks.add(paths, events: Self.markedEvents)
    }

    /// Removes every mark (the targets changed); files still targeted are marked again by `add`.
    /// An open in between is not reported: the periodic full pass still finds that process.
    public func removeAll() {
        marks.removeAll()
    }

    /// How many files are marked.
    public var markedCount: Int { marks.count }

    /// Stops watching and finishes every stream.
    public func stop() {
        wakeup?.wake()
    }

    deinit {
        stop()
        if let wakeup { Descriptor.close(wakeup.write) }
    }
}

/// A file's identity: the device and inode `stat` gives through every link.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    /// The identity of the file `path` leads to. stat(2).
    init(path: String) throws(SystemError) {
        let info = try Files.status(path)
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

/// The fanotify instances and the files marked on them, shared by the watch (which marks) and its
/// thread (which reads, then closes). Marking holds the lock, so a descriptor number is never
/// used after the thread closed it (it may have been reused by then).
private final class MarkTable: Sendable {
    private struct State {
        /// The instance reporting file handles (-1 when the kernel has none), where files are marked first.
        var byHandle: Int32
        /// The instance reporting descriptors, for files whose filesystem cannot encode handles.
        var byDescriptor: Int32
        var marked: Set<FileIdentity> = []
    }
    private let state: Mutex<State>

    init(byHandle: Int32, byDescriptor: Int32) { state = Mutex(State(byHandle: byHandle, byDescriptor: byDescriptor)) }

    /// Both instances (-1 for one that does not exist), or nil once closed.
    var descriptors: [Int32]? {
        state.withLock { $0.byDescriptor >= 0 ? [$0.byHandle, $0.byDescriptor] : nil }
    }

    var count: Int { state.withLock { $0.marked.count } }

    func add(_ paths: [String], events: Fanotify.Events) -> [String: SystemError] {
        var failures: [String: SystemError] = [:]
        state.withLock { state in
            guard state.byDescriptor >= 0 else { return }
            for path in paths {
                do throws(SystemError) {
                    let identity = try FileIdentity(path: path)
                    guard !state.marked.contains(identity) else { continue }
                    do throws(SystemError) {
                        guard state.byHandle >= 0 else { throw SystemError(call: "fanotify_init", errno: EOPNOTSUPP, subject: path) }
                        try Fanotify.mark(state.byHandle, path: path, events: events)
                    } catch where Fanotify.fileIDsUnsupported(error) {
                        try Fanotify.mark(state.byDescriptor, path: path, events: events)
                    }
                    state.marked.insert(identity)
                } catch {
                    failures[path] = error
                }
            }
        }
        return failures
    }

    func removeAll() {
        state.withLock { state in
            guard state.byDescriptor >= 0 else { return }
            if state.byHandle >= 0 { try? Fanotify.removeAllMarks(state.byHandle) }
            try? Fanotify.removeAllMarks(state.byDescriptor)
            state.marked.removeAll()
        }
    }

    /// Closes the instances (their marks go with them).
    func close() {
        state.withLock { state in
            for fd in [state.byHandle, state.byDescriptor] where fd >= 0 { Descriptor.close(fd) }
            state.byHandle = -1
            state.byDescriptor = -1
            state.marked.removeAll()
        }
    }
}

/// The watch's thread: reads events and fans the openers out until woken to stop, then closes
/// what it owns.
private final class FanotifyLoop: Sendable {
    let marks: MarkTable
    /// The instances read (poll(2) skips a -1).
    let instances: [Int32]
    let wakeup: WakeupChannel
    let broadcast: Broadcast<MappingEvent>
    /// The agent's own pid: its reads of the targets are not news.
    let agent: ProcessID

    init(marks: MarkTable, wakeup: WakeupChannel, broadcast: Broadcast<MappingEvent>, agent: ProcessID) {
        self.marks = marks
        self.instances = marks.descriptors ?? [-1, -1]
        self.wakeup = wakeup
        self.broadcast = broadcast
        self.agent = agent
    }

    /// Closes what the thread owns; the watch's deinit closes the wake-up's write end (so `stop()`
    /// never writes to a closed descriptor number that may have been reused meanwhile).
    func close() {
        marks.close()
        Descriptor.close(wakeup.read)
    }

    func run() {
        defer {
            close()
            broadcast.finish()
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let ready: [Bool]
            do {
                ready = try Descriptor.waitReadable(instances + [wakeup.read], timeoutMilliseconds: -1, subject: Fanotify.subject)
            } catch {
                return
            }
            if ready[instances.count] { return }
            var events: [Fanotify.Event] = []
            do throws(SystemError) {
                for (fd, isReady) in zip(instances, ready) where isReady {
                    events += try Fanotify.readEvents(fd, into: &buffer) ?? []
                }
            } catch {
                return
            }
            guard !events.isEmpty else { continue }
            for event in MappingEvents.from(events, agent: agent) { broadcast.yield(event) }
            // Let opens queue before the next read: the kernel merges one process's repeated
            // opens of one file into one record meanwhile.
            guard let woken = try? Descriptor.waitReadable([wakeup.read], timeoutMilliseconds: MappingWatch.readPauseMilliseconds,
                                                           subject: Fanotify.subject), !woken[0] else { return }
        }
    }
}

/// Turns fanotify's records into what the agent acts on.
enum MappingEvents {
    /// One `.opened` per process in `events` (in first-seen order, the agent's own dropped), and
    /// `.overflow` first when the kernel lost some.
    static func from(_ events: [Fanotify.Event], agent: ProcessID) -> [MappingEvent] {
        var out: [MappingEvent] = events.contains { $0.events.contains(.overflow) } ? [.overflow] : []
        var seen: Set<ProcessID> = []
        for event in events where !event.events.contains(.overflow) {
            guard let pid = event.pid, pid != agent, seen.insert(pid).inserted else { continue }
            out.append(.opened(pid: pid))
        }
        return out
    }
}
