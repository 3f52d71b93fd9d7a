import AgentCore
import Foundation
import Glibc
import Testing

@Test func failedInstall_isDueOnANewIndexVersionOrAfterItsBackoff_never_before() {
    let now = 1_750_000_000.0
    let failed = FailedInstall(id: "B3", kind: "baseline", reason: "preinst exited 1", now: now, attempts: 1, channelVersion: 7)
    #expect(!failed.isDue(channelVersion: 7, now: now + 1))
    #expect(!failed.isDue(channelVersion: 7, now: now + FailedInstall.firstBackoff - 1))
    #expect(failed.isDue(channelVersion: 7, now: now + FailedInstall.firstBackoff))
    #expect(failed.isDue(channelVersion: 8, now: now + 1))
}

@Test func failedInstall_backoffDoublesUpToADay() {
    #expect(FailedInstall.backoff(afterAttempts: 1) == 15 * 60)
    #expect(FailedInstall.backoff(afterAttempts: 2) == 30 * 60)
    #expect(FailedInstall.backoff(afterAttempts: 3) == 60 * 60)
    #expect(FailedInstall.backoff(afterAttempts: 8) == 24 * 3600)
    #expect(FailedInstall.backoff(afterAttempts: 1000) == 24 * 3600)
}

@Test func stateStore_keepsFailedInstallsAcrossASave_andReadsOlderFilesWithoutThem() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path + "/state")
    var state = AgentState()
    state.failedInstalls = [FailedInstall(id: "B3", kind: "baseline", reason: "x", now: 0, attempts: 2, channelVersion: 4)]
    try store.save(state)
    #expect(try store.load() == state)
    // A state directory the store creates: others may pass through (to the patch objects), not list it.
    let mode = try FileManager.default.attributesOfItem(atPath: directory.path + "/state")[.posixPermissions] as? Int
    #expect(mode == Int(StateStore.directoryMode))
    #expect(StateStore.directoryMode == 0o711)
}
