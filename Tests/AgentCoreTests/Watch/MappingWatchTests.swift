@testable import AgentCore
import Artifact
import Foundation
import Glibc
import HotpatchFixtures
import LinuxSystem
import Testing

/// Records every mapping event, so one that arrives before the test looks for it is not lost.
private final class MappingRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [MappingEvent] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<MappingEvent>) {
        task = Task { [weak self] in
            for await event in stream {
                guard let self else { return }
                self.lock.withLock { self.events.append(event) }
            }
        }
    }

    /// Every event recorded so far.
    var recorded: [MappingEvent] { lock.withLock { events } }

    /// Waits up to `timeout` for `event`; true when it came.
    func waitFor(_ event: MappingEvent, within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if recorded.contains(event) { return true }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return recorded.contains(event)
    }

    deinit { task?.cancel() }
}

/// The mapping watch on real files and real processes that `dlopen` a library long after they
/// started. Needs CAP_SYS_ADMIN (the tests run as root).
@Suite struct WatchMappingTests {
    /// This suite's library build-id: no other fixture's.
    static let buildID = "1a7e10ad0000400080000000000000a1"

    @Test func aProcessThatDlopensAMarkedLibraryAfterTheMarkIsReported() async throws {
        let scratch = try TemporaryDirectory(prefix: "mapping-watch")
        defer { scratch.remove() }
        let fixture = try LateLoadFixture(in: scratch.path, buildID: Self.buildID)
        let watch = MappingWatch()
        try #require(watch.mode == .fanotify)
        defer { watch.stop() }
        let recorder = MappingRecorder(watch.events())
        let loader = try LateLoadFixture.start(fixture.loader, loading: fixture.library)
        #expect(watch.add([fixture.library]).isEmpty)
        #expect(watch.markedCount == 1)

        let told = ContinuousClock.now
        loader.signal(SIGUSR1)
        #expect(try loader.lateValue(1, timeout: 5) >= 0, "the library is loaded")
        let reported = await recorder.waitFor(.opened(pid: ProcessID(loader.pid)), within: .seconds(5))
        #expect(reported, "loader \(loader.pid), events: \(recorder.recorded)")
        print("dlopen of a marked library → reported within \(ContinuousClock.now - told) of SIGUSR1")
    }

    @Test func aProcessThatLoadsAnUnmarkedCopyOfTheLibraryIsNotReported() async throws {
        let scratch = try TemporaryDirectory(prefix: "mapping-watch")
        defer { scratch.remove() }
        let fixture = try LateLoadFixture(in: scratch.path, buildID: Self.buildID)
        let copy = scratch.file("liblate-copy.so")
        try FileManager.default.copyItem(atPath: fixture.library, toPath: copy)
        let watch = MappingWatch()
        try #require(watch.mode == .fanotify)
        defer { watch.stop() }
        let recorder = MappingRecorder(watch.events())
        watch.add([fixture.library])

        let unrelated = try LateLoadFixture.start(fixture.loader, loading: copy)
        unrelated.signal(SIGUSR1)
        _ = try unrelated.lateValue(1, timeout: 5)
        // The marked library's loader comes second: once its event is in, the first one's would be too.
        let related = try LateLoadFixture.start(fixture.loader, loading: fixture.library)
        related.signal(SIGUSR1)
        _ = try related.lateValue(1, timeout: 5)
        #expect(await recorder.waitFor(.opened(pid: ProcessID(related.pid)), within: .seconds(5)), "events: \(recorder.recorded)")
        #expect(!recorder.recorded.contains(.opened(pid: ProcessID(unrelated.pid))), "events: \(recorder.recorded)")
    }

    @Test func theAgentsOwnOpensOfAMarkedFileAreNotReported() async throws {
        let scratch = try TemporaryDirectory(prefix: "mapping-watch")
        defer { scratch.remove() }
        let path = try scratch.write("liblate.so", "not a library\n")
        let watch = MappingWatch()
        try #require(watch.mode == .fanotify)
        defer { watch.stop() }
        let recorder = MappingRecorder(watch.events())
        watch.add([path])
        _ = try Files.read(path)  // The agent reads a target's build-id so.
        let child = try ChildProcess.spawn("/bin/cat", [path], standardOutput: .null)
        _ = ChildProcess.waitForExit(child)
        #expect(await recorder.waitFor(.opened(pid: child), within: .seconds(5)), "events: \(recorder.recorded)")
        #expect(!recorder.recorded.contains(.opened(pid: .current)))
    }

    @Test func oneFileReachedThroughSeveralPathsIsMarkedOnce_andRemoveAllStopsTheReports() async throws {
        let scratch = try TemporaryDirectory(prefix: "mapping-watch")
        defer { scratch.remove() }
        let path = try scratch.write("liblate.so.1", "not a library\n")
        #expect(symlink(path, scratch.file("liblate.so")) == 0)
        let watch = MappingWatch()
        try #require(watch.mode == .fanotify)
        defer { watch.stop() }
        let recorder = MappingRecorder(watch.events())
        let failures = watch.add([path, scratch.file("liblate.so"), scratch.file("missing.so")])
        #expect(watch.markedCount == 1)
        #expect(failures.keys.sorted() == [scratch.file("missing.so")])
        #expect(failures[scratch.file("missing.so")]?.errno == ENOENT)

        watch.removeAll()
        #expect(watch.markedCount == 0)
        let before = try ChildProcess.spawn("/bin/cat", [path], standardOutput: .null)
        _ = ChildProcess.waitForExit(before)
        watch.add([path])
        let after = try ChildProcess.spawn("/bin/cat", [path], standardOutput: .null)
        _ = ChildProcess.waitForExit(after)
        #expect(await recorder.waitFor(.opened(pid: after), within: .seconds(5)), "events: \(recorder.recorded)")
        #expect(!recorder.recorded.contains(.opened(pid: before)), "events: \(recorder.recorded)")
    }

    @Test func stopEndsTheStream() async {
        let watch = MappingWatch()
        let stream = watch.events()
        watch.stop()
        var iterator = stream.makeAsyncIterator()
        while let _ = await iterator.next() {}
    }
}

@Suite struct WatchMappingEventsTests {
    @Test func eachOpenerOnceInOrder_theAgentLeftOut_andAnOverflowFirst() {
        let agent = ProcessID(10)
        let events = MappingEvents.from([
            Fanotify.Event(events: .open, pid: ProcessID(20)),
            Fanotify.Event(events: .open, pid: agent),
            Fanotify.Event(events: .open, pid: ProcessID(30)),
            Fanotify.Event(events: .open, pid: ProcessID(20)),
            Fanotify.Event(events: .overflow, pid: nil),
            Fanotify.Event(events: .open, pid: nil),
        ], agent: agent)
        #expect(events == [.overflow, .opened(pid: ProcessID(20)), .opened(pid: ProcessID(30))])
    }
}

@Suite struct WatchTargetedFilesTests {
    private static let buildID = WatchMappingTests.buildID

    private func target(_ path: String, buildID: String = Self.buildID) -> HotpatchTarget {
        HotpatchTarget(buildID: BuildID(hex: buildID)!, pathHint: path, patchObjectPath: "/nonexistent/patch.so", redirections: [])
    }

    @Test func aPathHintIsWantedOnlyWhenItHoldsATargetedBuildID() throws {
        let scratch = try TemporaryDirectory(prefix: "mapping-watch")
        defer { scratch.remove() }
        let fixture = try LateLoadFixture(in: scratch.path, buildID: Self.buildID)
        var files = TargetedFiles()
        let before = files.files(listed: [])
        #expect(before.isEmpty, "no targets, no files")
        let changed = files.retarget([target(fixture.library), target(fixture.loader), target(scratch.file("missing.so")),
                                      target("relative/liblate.so")])
        #expect(changed)
        let wanted = files.files(listed: [])
        #expect(wanted == [fixture.library])
        let changedAgain = files.retarget([target(fixture.library)])
        #expect(!changedAgain, "the same build-ids: nothing to start over")
    }

    @Test func aProcessMappingACopyElsewhereGivesTheFileItMapped_lookedAtOnce() throws {
        let scratch = try TemporaryDirectory(prefix: "mapping-watch")
        defer { scratch.remove() }
        let fixture = try LateLoadFixture(in: scratch.path, buildID: Self.buildID)
        // The copy a chroot or container would hold: the same build-id at another path.
        let copy = scratch.file("chroot-liblate.so")
        try FileManager.default.copyItem(atPath: fixture.library, toPath: copy)
        let loader = try LateLoadFixture.start(fixture.loader, loading: copy)
        loader.signal(SIGUSR1)
        _ = try loader.lateValue(1, timeout: 5)
        let pid = ProcessID(loader.pid)

        var files = TargetedFiles()
        let changed = files.retarget([target(scratch.file("elsewhere/liblate.so"))])
        #expect(changed)
        let found = files.files(listed: [pid])
        #expect(found.count == 1, "\(found)")
        #expect(found.allSatisfy { $0.hasPrefix("/proc/\(pid)/map_files/") }, "\(found)")
        #expect(try found.map { try FileIdentity(path: $0) } == [try FileIdentity(path: copy)])
        let again = files.files(listed: [pid])
        #expect(again.isEmpty, "a process is looked at once per set of targets")
        _ = files.retarget([target(copy, buildID: "00aa")])
        let otherTargets = files.files(listed: [pid])
        #expect(otherTargets.isEmpty, "another build-id: the copy is not wanted")
        _ = files.retarget([target(copy)])
        let newTargets = files.files(listed: [pid])
        #expect(newTargets.count == 2, "new targets: the hint and the process again")
    }
}

@Suite struct WatchFollowUpScheduleTests {
    private let start = ContinuousClock.now
    private let pid = ProcessID(42)

    private func at(_ milliseconds: Double) -> ContinuousClock.Instant { start + .microseconds(Int64(milliseconds * 1000)) }

    /// Steps through `milliseconds` by 0.1 ms, noting each sign at its time, and returns the times
    /// at which some look was taken.
    private func looks(_ signs: [(Double, FollowUpSchedule.Sign)], through milliseconds: Double) -> [Double] {
        var schedule = FollowUpSchedule()
        var taken: [Double] = []
        for tenth in 0...Int(milliseconds * 10) {
            let now = Double(tenth) / 10
            for (time, sign) in signs where Int(time * 10) == tenth { schedule.note(pid, sign, at: at(time)) }
            if !schedule.takeDue(now: at(now)).isEmpty { taken.append(now) }
        }
        return taken
    }

    @Test func anExecAsksForLooksAtOnce_5And30MillisecondsLater() {
        var schedule = FollowUpSchedule()
        func take(_ milliseconds: Double) -> [ProcessID] { schedule.takeDue(now: at(milliseconds)) }
        #expect(schedule.nextLook == nil)
        schedule.note(pid, .exec, at: at(0))
        #expect(take(0) == [pid])
        #expect(take(0.5) == [], "within the slack of the look just taken: nothing more")
        #expect(schedule.nextLook == at(5))
        #expect(take(4) == [pid], "4 ms + 1 ms slack reaches the 5 ms look")
        #expect(schedule.nextLook == at(30))
        #expect(take(20) == [])
        #expect(take(31) == [pid])
        #expect(schedule.nextLook == nil)
        #expect(take(100) == [])
    }

    @Test func anOpenOfATargetedLibraryIsLookedAt5And30MillisecondsLater_notAtOnce() {
        // At once the loader has not mapped the library yet, or is in the middle of mapping it.
        #expect(looks([(0, .open)], through: 40) == [4, 29])
    }

    @Test func anExecFollowedByTheLoadersOpenOfATargetedLibrarySharesTheLooks() {
        #expect(looks([(0, .exec), (0.4, .open)], through: 40) == [0, 4, 29])
    }

    @Test func aSignLongAfterTheFirstAsksForLooksOfItsOwn() {
        #expect(looks([(0, .exec), (10, .open)], through: 50) == [0, 4, 14, 29, 39])
    }

    @Test func signsBeyondABurstOfThree_areDeferredToTheProcesssPace_notDropped() {
        // The exec and two opens are counted at once; the third open waits for the pace (25 ms).
        #expect(looks([(0, .exec), (1, .open), (2, .open), (3, .open)], through: 60) == [0, 4, 6, 29, 31, 54])
    }

    @Test func aProcessOpeningATargetedFileTenThousandTimesASecond_isLookedAtByThePace_andForgottenAfter() {
        var schedule = FollowUpSchedule()
        var taken: [Double] = []
        var signs: [Double] = []
        // An open every 0.1 ms for a second, the schedule consulted as often.
        for tenth in 0...12_000 {
            let now = Double(tenth) / 10
            if now <= 1000 {
                schedule.note(pid, .open, at: at(now))
                signs.append(now)
            }
            if !schedule.takeDue(now: at(now)).isEmpty { taken.append(now) }
        }
        let spacing = Double(FollowUpSchedule.signSpacing.components.attoseconds) * 1e-15
        let allowed = 2 * (FollowUpSchedule.burst + Int(1000 / spacing) + 1)
        #expect(taken.count <= allowed, "\(taken.count) looks for \(signs.count) opens")
        // Each open still has a look at least 5 ms after it, and one at least 30 ms after it,
        // each less than a spacing late (1 ms slack).
        let lateness = spacing + 1
        for sign in signs {
            #expect(taken.contains { $0 >= sign + 4 && $0 <= sign + 5 + lateness }, "open at \(sign) ms")
            #expect(taken.contains { $0 >= sign + 29 && $0 <= sign + 30 + lateness }, "open at \(sign) ms")
        }
        #expect(schedule.trackedCount == 0, "a process done signing is forgotten")
    }

    @Test func processesDueTogetherAreEachTakenOnce() {
        var schedule = FollowUpSchedule()
        schedule.note(ProcessID(7), .exec, at: at(0))
        schedule.note(ProcessID(3), .exec, at: at(0))
        schedule.note(ProcessID(7), .exec, at: at(0.2))
        let taken = schedule.takeDue(now: at(1))
        #expect(taken == [ProcessID(3), ProcessID(7)])
    }
}
