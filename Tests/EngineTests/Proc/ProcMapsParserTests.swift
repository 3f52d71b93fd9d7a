import Testing
@testable import Engine

private func parse(_ text: String) throws -> [MemoryMapping] {
    try ProcMapsParser.parse(Array(text.utf8), path: "/proc/1/maps")
}

@Test func maps_whenLineIsFileBacked_readsEveryField() throws {
    let m = try parse("5619e3428000-5619e342d000 r-xp 00002000 fe:01 253911                     /usr/bin/cat\n")
    #expect(m.count == 1)
    let line = try #require(m.first)
    #expect(line.start == 0x5619e3428000 && line.end == 0x5619e342d000)
    #expect(line.isReadable && !line.isWritable && line.isExecutable && !line.isShared)
    #expect(line.offset == 0x2000)
    #expect(line.deviceMajor == 0xfe && line.deviceMinor == 1)
    #expect(line.inode == 253911)
    #expect(line.path == "/usr/bin/cat")
    #expect(!line.isDeleted && line.isFileBacked)
    #expect(line.size == 0x5000)
}

@Test func maps_whenNeighbouringLinesShareAPathOrOnlyItsLength_keepsEachLinesOwnPath() throws {
    // Lines with the same path share one string; a path of the same length but other bytes, an
    // anonymous line between two of the same path and a deleted copy must each keep their own.
    let m = try parse("""
    55d000000000-55d000001000 r--p 00000000 fe:01 11 /usr/lib/liba.so
    55d000001000-55d000002000 r-xp 00001000 fe:01 11 /usr/lib/liba.so
    55d000002000-55d000003000 r--p 00002000 fe:01 12 /usr/lib/libb.so
    55d000003000-55d000004000 rw-p 00000000 00:00 0
    55d000004000-55d000005000 rw-p 00003000 fe:01 12 /usr/lib/libb.so
    55d000005000-55d000006000 r--p 00000000 fe:01 13 /usr/lib/libb.so (deleted)
    55d000006000-55d000007000 r--p 00000000 00:00 0 [heap]

    """)
    #expect(m.map(\.path) == ["/usr/lib/liba.so", "/usr/lib/liba.so", "/usr/lib/libb.so", "", "/usr/lib/libb.so",
                               "/usr/lib/libb.so", "[heap]"])
    #expect(m.map(\.isDeleted) == [false, false, false, false, false, true, false])
    #expect(m.map(\.inode) == [11, 11, 12, 0, 12, 13, 0])
}

@Test func maps_whenAnonymousWithTrailingBlank_givesEmptyPath() throws {
    let m = try parse("7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n7f0000001000-7f0000002000 ---p 00000000 00:00 0\n")
    #expect(m.count == 2)
    #expect(m.allSatisfy { $0.path == "" && !$0.isFileBacked && !$0.isDeleted && $0.inode == 0 })
    #expect(!m[1].isReadable && !m[1].isWritable && !m[1].isExecutable)
}

@Test func maps_whenPseudoPaths_keepsThemAsIsAndNotFileBacked() throws {
    let m = try parse("""
        55d0c4a2b000-55d0c4a4c000 rw-p 00000000 00:00 0                          [heap]
        7ffc1a2b3000-7ffc1a2d4000 rw-p 00000000 00:00 0                          [stack]
        7ffc1a3f0000-7ffc1a3f2000 r-xp 00000000 00:00 0                          [vdso]
        ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]

        """)
    #expect(m.map(\.path) == ["[heap]", "[stack]", "[vdso]", "[vsyscall]"])
    #expect(m.allSatisfy { !$0.isFileBacked })
    #expect(m[3].start == 0xffffffffff600000 && m[3].end == 0xffffffffff601000)
}

@Test func maps_whenPathHasSpacesAndDeletedSuffix_keepsPathAndMarksDeleted() throws {
    let m = try parse("7f1c2a000000-7f1c2a021000 r-xp 00001000 08:02 1234   /opt/my app/lib two.so (deleted)\n")
    let line = try #require(m.first)
    #expect(line.path == "/opt/my app/lib two.so")
    #expect(line.isDeleted && line.isFileBacked)
}

@Test func maps_whenPathHasInnerDeletedText_onlyStripsTrailingSuffix() throws {
    let m = try parse("1000-2000 r--p 00000000 08:02 7 /tmp/a (deleted) b\n")
    #expect(m.first?.path == "/tmp/a (deleted) b")
    #expect(m.first?.isDeleted == false)
}

@Test func maps_whenMemfd_stripsDeletedAndKeepsName() throws {
    let m = try parse("7f00aa000000-7f00aa001000 rw-s 00000000 00:01 4242                       /memfd:patch area (deleted)\n")
    let line = try #require(m.first)
    #expect(line.path == "/memfd:patch area")
    #expect(line.isDeleted && line.isShared && line.isFileBacked)
    #expect(line.deviceMajor == 0 && line.deviceMinor == 1)
}

@Test func maps_whenLastLineHasNoNewline_stillParsesIt() throws {
    let m = try parse("1000-2000 r--p 00000000 00:00 0\n3000-4000 r--p 00000000 fd:10 99 /x")
    #expect(m.count == 2)
    #expect(m[1].path == "/x" && m[1].deviceMajor == 0xfd && m[1].deviceMinor == 0x10)
}

@Test func maps_whenHexHasUppercaseOrLongDeviceMajor_parses() throws {
    let m = try parse("7F00-8000 rw-p 0000ABCD 103:05 1 /dev/zero\n")
    #expect(m.first?.start == 0x7f00 && m.first?.offset == 0xabcd && m.first?.deviceMajor == 0x103)
}

@Test func maps_whenEmpty_givesNoMappings() throws {
    #expect(try parse("").isEmpty)
}

@Test(arguments: [
    "garbage\n",
    "1000-2000\n",
    "1000-2000 r--p\n",
    "1000-2000 rwq- 00000000 00:00 0\n",
    "1000-2000 r--p 00000000 00-00 0\n",
    "1000-2000 r--p 00000000 00:00 x\n",
    "1000-2000 r--p 00000000 00:00 12abc /x\n",
    "2000-1000 r--p 00000000 00:00 0\n",
    "10000000000000000-1 r--p 00000000 00:00 0\n",
    "1000-2000 r--p 00000000 00:00 0\n\n3000-4000 r--p 00000000 00:00 0\n",
    "1000-2000 r--p 00000000 00:00 99999999999999999999999 /x\n",
])
func maps_whenLineIsMalformed_throwsTypedErrorNamingTheLine(text: String) {
    #expect {
        try parse(text)
    } throws: { error in
        guard case let .malformedProcFile(path, reason) = error as? EngineError else { return false }
        return path == "/proc/1/maps" && reason.hasPrefix("line ")
    }
}

@Test func maps_whenFileIsTruncatedAnywhere_neverTraps() {
    let text = Array("7f1c2a000000-7f1c2a021000 r-xp 00001000 08:02 1234   /lib/x.so (deleted)\n".utf8)
    for length in 0..<text.count {
        _ = try? ProcMapsParser.parse(Array(text[0..<length]), path: "t")
    }
}
