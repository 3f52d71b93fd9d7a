import Testing
@testable import Engine

private let sample = """
55d0a0000000-55d0a0400000 r-xp 00010000 fe:01 4242                       /usr/sbin/hotpatch-agent
Size:               4096 kB
KernelPageSize:        4 kB
Rss:                1536 kB
Pss:                1536 kB
Private_Clean:      1536 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
55d0a0400000-55d0a0420000 r--p 00410000 fe:01 4242                       /usr/sbin/hotpatch-agent
Size:                128 kB
Rss:                 128 kB
Private_Dirty:        64 kB
Anonymous:            64 kB
VmFlags: rd mr mw me
7f3a10000000-7f3a10021000 rw-p 00000000 00:00 0                          [anon:glibc: malloc arena]
Size:                132 kB
Rss:                  12 kB
Private_Dirty:        12 kB
Anonymous:            12 kB
THPeligible:    0
VmFlags: rd wr mr mw me ac

"""

@Test func smaps_readsEachMappingWithItsResidentFields() throws {
    let parsed = try ProcSmapsParser.parse(Array(sample.utf8), path: "/proc/self/smaps")
    #expect(parsed.count == 3)
    #expect(parsed[0].mapping.start == 0x55d0a0000000 && parsed[0].mapping.path == "/usr/sbin/hotpatch-agent")
    #expect(parsed[0].residentKiB == 1536 && parsed[0].privateDirtyKiB == 0 && parsed[0].anonymousKiB == 0)
    #expect(parsed[1].residentKiB == 128 && parsed[1].privateDirtyKiB == 64 && parsed[1].anonymousKiB == 64)
    #expect(parsed[2].mapping.path == "[anon:glibc: malloc arena]" && parsed[2].anonymousKiB == 12)
}

@Test func smaps_onlyUnchangedReadOnlyFilePagesMayBeDropped() throws {
    let parsed = try ProcSmapsParser.parse(Array(sample.utf8), path: "/proc/self/smaps")
    // Code: droppable. Relocated constants (pages of its own) and the heap: never.
    #expect(parsed.map(\.holdsOnlyFilePages) == [true, false, false])
    var shared = parsed[0]
    shared.mapping.isShared = true
    var writable = parsed[0]
    writable.mapping.isWritable = true
    var deleted = parsed[0]
    deleted.mapping.isDeleted = true
    #expect(!shared.holdsOnlyFilePages && !writable.holdsOnlyFilePages && !deleted.holdsOnlyFilePages)
    // A binary written moments ago: its pages are dirty in the page cache, still the file's own.
    var fresh = parsed[0]
    fresh.privateDirtyKiB = fresh.residentKiB
    #expect(fresh.holdsOnlyFilePages)
}

@Test func smaps_whenAMappingLacksAField_saysWhichMapping() throws {
    let text = "7f0000000000-7f0000001000 r-xp 00000000 fe:01 7 /lib/x.so\nSize: 4 kB\nRss: 4 kB\nAnonymous: 0 kB\n"
    #expect {
        try ProcSmapsParser.parse(Array(text.utf8), path: "/proc/self/smaps")
    } throws: { error in
        "\(error)".contains("/proc/self/smaps") && "\(error)".contains("7f0000000000-7f0000001000")
    }
}

@Test func smaps_whenAFieldComesFirst_isRefused() throws {
    #expect(throws: EngineError.self) { try ProcSmapsParser.parse(Array("Rss: 4 kB\n".utf8), path: "/proc/self/smaps") }
}
