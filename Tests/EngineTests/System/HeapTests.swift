import Glibc
import LinuxSystem
import Testing
@testable import Engine

private func mapping(_ start: UInt64, _ end: UInt64, inode: UInt64, path: String, executable: Bool = false) -> MemoryMapping {
    MemoryMapping(start: start, end: end, isReadable: true, isWritable: false, isExecutable: executable, isShared: false,
                  offset: 0, deviceMajor: 8, deviceMinor: 1, inode: inode, path: path, isDeleted: false)
}

@Test func loadedRanges_spanEachObjectsMappings_andStopAtAnotherFile() {
    let maps = [
        mapping(0x1000, 0x2000, inode: 1, path: "/usr/bin/a"),
        mapping(0x2000, 0x5000, inode: 1, path: "/usr/bin/a", executable: true),
        MemoryMapping(start: 0x5000, end: 0x6000, isReadable: true, isWritable: true, isExecutable: false, isShared: false,
                      offset: 0, deviceMajor: 0, deviceMinor: 0, inode: 0, path: "", isDeleted: false),
        mapping(0x6000, 0x7000, inode: 1, path: "/usr/bin/a"),
        // A data file mapped read-only: no code, never an object.
        mapping(0x9000, 0xa000, inode: 9, path: "/var/lib/data"),
        mapping(0xb000, 0xc000, inode: 1, path: "/usr/bin/a"),
    ]
    let ranges = Heap.LoadedRange.objects(in: maps)
    #expect(ranges.map(\.range) == [0x1000..<0x7000, 0xb000..<0xc000])
    #expect(ranges[0].holds(maps[3]) && !ranges[0].holds(maps[4]) && !ranges[0].holds(maps[5]))
}

/// The Rss of this process's loaded objects' unchanged read-only mappings, and of those with pages of their own.
private func ownReadOnlyResident() throws -> (clean: UInt64, relocated: [UInt64: UInt64]) {
    let path = "/proc/self/smaps"
    let all = try ProcSmapsParser.parse(Files.read(path), path: path)
    let objects = Heap.LoadedRange.objects(in: all.map(\.mapping))
    let clean = all.filter { resident in resident.holdsOnlyFilePages && objects.contains { $0.holds(resident.mapping) } }
        .reduce(0) { $0 + $1.residentKiB }
    var relocated: [UInt64: UInt64] = [:]
    for resident in all where resident.mapping.isFileBacked && !resident.mapping.isWritable && resident.anonymousKiB > 0 {
        relocated[resident.mapping.start] = resident.anonymousKiB
    }
    return (clean, relocated)
}

@Test func unmapIdleFilePages_dropsCleanCodePages_keepsRelocatedOnes_andTheProcessRunsOn() throws {
    let before = try ownReadOnlyResident()
    #expect(before.clean > 0)
    let released = try Heap.unmapIdleFilePages()
    let after = try ownReadOnlyResident()
    #expect(released >= before.clean / 2, "released \(released) KiB of \(before.clean)")
    // Other test threads run meanwhile and map some code again, but far less than was there.
    #expect(after.clean < before.clean, "\(after.clean) KiB still mapped of \(before.clean)")
    // Relocated constants (RELRO) keep their own pages: dropping them would bring back the file's bytes.
    #expect(!before.relocated.isEmpty)
    for (start, anonymous) in before.relocated {
        #expect(after.relocated[start] == anonymous, "mapping at \(String(start, radix: 16))")
    }
    // The code runs on from the page cache.
    #expect(try ProcFS.processIDs().contains(.current))
}
