import AgentCore
import AgentProtocol
import Artifact
import Engine
import Foundation
import Testing

/// A state with every field set, as after months of use.
private func sampleState(historyCount: Int = 20) -> AgentState {
    var state = AgentState()
    state.acceptedIndexVersion = 42
    state.activeBaseline = "base-2025q1"
    state.bootID = "0f3c5a4e-8c1e-4b4e-9d7a-1c2b3d4e5f60"
    state.pendingReboot = [PendingRelease(id: "fix-openssl-3", kind: "fix", reason: "libssl layout change (CVE-2025-0001)",
                                          installedAt: "2025-03-01T02:00:00Z", bootID: "0f3c5a4e")]
    state.installedReleases = ["base-2025q1", "fix-openssl-3"]
    state.quarantined = ["hp-glibc-2": "process 4242 (/usr/sbin/nginx) died of SIGSEGV 3 s after patching"]
    state.held = ["hp-zlib-1"]
    state.enrolled = false
    for index in 0..<historyCount {
        state.record(HistoryEntry(time: "2025-03-01T02:\(index % 60):00Z", event: "applied", release: "hp-\(index)",
                                  message: "applied hp-\(index) to 3 processes, ünïcode “quoted”"))
    }
    return state
}

private func isCorrupt(_ store: StateStore) -> Bool {
    do {
        _ = try store.load()
        return false
    } catch AgentCoreError.corruptState {
        return true
    } catch {
        return false
    }
}

@Test func load_whenNoFile_givesAFreshState() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    #expect(try StateStore(directory: directory.path + "/missing").load() == AgentState())
}

@Test func save_thenLoad_givesTheSameState() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path + "/state")
    try store.save(sampleState())
    #expect(try store.load() == sampleState())
    #expect(store.path == directory.path + "/state/state.json")
}

@Test func save_createsAPrivateFileInADirectoryOthersMayPassButNotList() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path + "/a/b")
    try store.save(AgentState())
    let attributes = try FileManager.default.attributesOfItem(atPath: store.path)
    #expect((attributes[.posixPermissions] as? Int) == 0o600)
    let directoryAttributes = try FileManager.default.attributesOfItem(atPath: directory.path + "/a/b")
    #expect((directoryAttributes[.posixPermissions] as? Int) == 0o711)
}

@Test func load_whenFileCutShortAtAnyLength_reportsItCorrupt() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path)
    try store.save(sampleState(historyCount: 5))
    let whole = try Data(contentsOf: URL(fileURLWithPath: store.path))
    for length in 0..<whole.count {
        try whole.prefix(length).write(to: URL(fileURLWithPath: store.path))
        #expect(isCorrupt(store), "a file cut to \(length) of \(whole.count) bytes was accepted")
    }
}

@Test func load_whenAnyByteFlipped_reportsItCorrupt() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path)
    try store.save(sampleState(historyCount: 5))
    let whole = try Data(contentsOf: URL(fileURLWithPath: store.path))
    for index in 0..<whole.count {
        var altered = whole
        altered[index] ^= 0x01
        try altered.write(to: URL(fileURLWithPath: store.path))
        #expect(isCorrupt(store), "flipping byte \(index) was not noticed")
    }
}

@Test func load_whenCorrupt_leavesTheFileInPlaceAndSaysWhatToDo() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path)
    try directory.write("state.json", "{\"formatVersion\": 1}")
    do {
        _ = try store.load()
        Issue.record("a file without trailer was accepted")
    } catch let error as AgentCoreError {
        #expect(error == .corruptState(path: store.path, reason: "the SHA-256 trailer is missing, so the file was cut short"))
        #expect(error.description.contains("move it aside"))
    }
    #expect(try directory.read("state.json") == "{\"formatVersion\": 1}")
}

@Test func load_whenWrittenByANewerFormat_refusesNamingTheVersion() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path)
    let body = "{\"formatVersion\": 2, \"somethingNew\": true}"
    try directory.write("state.json", body + "\nsha256 \(ChannelKeys.sha256(Array(body.utf8)))\n")
    #expect(throws: AgentCoreError.unsupportedStateFormat(path: store.path, formatVersion: 2)) { try store.load() }
}

@Test func load_whenSealedButNotAStateDocument_reportsItCorrupt() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path)
    let body = "[1, 2, 3]"
    try directory.write("state.json", body + "\nsha256 \(ChannelKeys.sha256(Array(body.utf8)))\n")
    #expect(isCorrupt(store))
}

@Test func leftoverTemporaryFileFromACrash_isIgnoredByLoadAndRemovedBySave() throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = StateStore(directory: directory.path)
    try store.save(sampleState())
    let leftover = try directory.write(".state.json.tmp-99999-12345", "{\"formatVersion\": 1, \"acti")
    #expect(try store.load() == sampleState())
    try store.save(AgentState())
    #expect(!FileManager.default.fileExists(atPath: leftover))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["state.json"])
}

@Test func record_keepsOnlyTheNewestHistoryEntries() {
    var state = AgentState()
    for index in 0..<(AgentState.historyLimit + 25) {
        state.record(HistoryEntry(time: "t", event: "checked", message: "\(index)"))
    }
    #expect(state.history.count == AgentState.historyLimit)
    #expect(state.history.first?.message == "25")
    #expect(state.history.last?.message == "\(AgentState.historyLimit + 24)")
}

@Test func concurrentSaveAndLoad_neverSeeATornFile() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let small = sampleState(historyCount: 1)
    let large = sampleState(historyCount: AgentState.historyLimit)
    try StateStore(directory: directory.path).save(small)
    let loads = try await withThrowingTaskGroup(of: Int.self) { group in
        group.addTask {
            let writer = StateStore(directory: directory.path)
            for round in 0..<150 { try writer.save(round.isMultiple(of: 2) ? large : small) }
            return 0
        }
        group.addTask {
            // Another store instance: nothing but the file system's rename separates it from the writer.
            let reader = StateStore(directory: directory.path)
            var count = 0
            for _ in 0..<400 {
                let state = try reader.load()
                guard state == small || state == large else { throw AgentCoreError.corruptState(path: "", reason: "mixed") }
                count += 1
            }
            return count
        }
        return try await group.reduce(0, +)
    }
    #expect(loads == 400)
}
