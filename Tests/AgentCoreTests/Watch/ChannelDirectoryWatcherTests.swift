@testable import AgentCore
import Foundation
import Testing

/// Waits for the next value of `stream`, or returns false after `timeout`.
func next<T: Sendable>(_ stream: AsyncStream<T>, within timeout: Duration) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

@Suite struct WatchChannelDirectoryTests {
    @Test func aFileRenamedIntoTheDirectoryIsReported() async throws {
        let scratch = try TemporaryDirectory(prefix: "hotpatch-channel"), root = scratch.path
        defer { scratch.remove() }
        let watcher = try ChannelDirectoryWatcher(directory: root)
        let changes = watcher.changes()
        // Publishers write beside the channel and rename in, as rsync does.
        try Data("{}".utf8).write(to: URL(fileURLWithPath: root + ".tmp"))
        #expect(rename(root + ".tmp", root + "/index.json") == 0)
        #expect(await next(changes, within: .seconds(2)) != nil)
    }

    @Test func aMissingDirectoryIsPickedUpWhenItIsCreatedLater() async throws {
        let scratch = try TemporaryDirectory(prefix: "hotpatch-channel"), root = scratch.path
        defer { scratch.remove() }
        // Two levels missing: the watcher climbs to `root` and follows the path back down.
        let channel = root + "/var/channel"
        let watcher = try ChannelDirectoryWatcher(directory: channel)
        let changes = watcher.changes()
        try FileManager.default.createDirectory(atPath: root + "/var", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: channel, withIntermediateDirectories: false)
        #expect(await next(changes, within: .seconds(2)) != nil, "creation of the directory not reported")
        // And it now watches the directory itself.
        try await Task.sleep(for: .milliseconds(300))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: channel + "/index.json"))
        #expect(await next(changes, within: .seconds(2)) != nil, "change inside the new directory not reported")
    }

    @Test func aBurstOfWritesIsCoalescedIntoOneChange() async throws {
        let scratch = try TemporaryDirectory(prefix: "hotpatch-channel"), root = scratch.path
        defer { scratch.remove() }
        let watcher = try ChannelDirectoryWatcher(directory: root)
        let changes = watcher.changes()
        for index in 0..<20 {
            try Data("release \(index)".utf8).write(to: URL(fileURLWithPath: root + "/file-\(index)"))
        }
        let start = ContinuousClock.now
        #expect(await next(changes, within: .seconds(2)) != nil)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(150), "reported before the burst settled: \(waited)")
        #expect(await next(changes, within: .milliseconds(600)) == nil, "one burst reported twice")
    }

    @Test func aDeletedAndRecreatedDirectoryIsWatchedAgain() async throws {
        let scratch = try TemporaryDirectory(prefix: "hotpatch-channel"), root = scratch.path
        defer { scratch.remove() }
        let channel = root + "/channel"
        try FileManager.default.createDirectory(atPath: channel, withIntermediateDirectories: false)
        let watcher = try ChannelDirectoryWatcher(directory: channel)
        let changes = watcher.changes()
        try FileManager.default.removeItem(atPath: channel)
        #expect(await next(changes, within: .seconds(2)) != nil, "removal not reported")
        try FileManager.default.createDirectory(atPath: channel, withIntermediateDirectories: false)
        try await Task.sleep(for: .milliseconds(300))
        try Data("{}".utf8).write(to: URL(fileURLWithPath: channel + "/index.json"))
        #expect(await next(changes, within: .seconds(2)) != nil, "changes after re-creation not reported")
    }

    @Test func stopFinishesTheStreams() async throws {
        let scratch = try TemporaryDirectory(prefix: "hotpatch-channel"), root = scratch.path
        defer { scratch.remove() }
        let watcher = try ChannelDirectoryWatcher(directory: root)
        let changes = watcher.changes()
        watcher.stop()
        var iterator = changes.makeAsyncIterator()
        let finished: Void? = await iterator.next()
        #expect(finished == nil)
    }

    @Test func parentOfPathsClimbsToTheRoot() {
        #expect(InotifyLoopPaths.parent(of: "/var/lib/channel") == "/var/lib")
        #expect(InotifyLoopPaths.parent(of: "/var/") == "/")
        #expect(InotifyLoopPaths.parent(of: "/") == nil)
        #expect(InotifyLoopPaths.parent(of: "channel") == ".")
    }
}

@Suite struct WatchShutdownTests {
    @Test func stoppingTwiceAndReleasingAfterTheThreadEndedIsHarmless() async throws {
        let scratch = try TemporaryDirectory(prefix: "hotpatch-channel"), root = scratch.path
        defer { scratch.remove() }
        var watcher: ChannelDirectoryWatcher? = try ChannelDirectoryWatcher(directory: root)
        let changes = watcher!.changes()
        watcher!.stop()
        for await _ in changes {}  // The thread has ended and closed its end.
        watcher!.stop()  // Would be SIGPIPE, or a write into a reused descriptor, if done carelessly.
        watcher = nil
        let processWatcher = ProcessEventWatcher()
        processWatcher.stop()
        for await _ in processWatcher.events() {}
        processWatcher.stop()
    }
}
