import Architecture
import LinuxSystem
import Testing
@testable import Engine

/// Where an image goes near its target, from the process's mappings alone.
@Suite struct NearAddressTests {
    private static let page = HostArchitecture.pageSize
    private static let image = 4 * page

    private static func mapping(_ start: UInt64, _ end: UInt64, path: String = "", executable: Bool = false) -> MemoryMapping {
        MemoryMapping(start: start, end: end, isReadable: true, isWritable: !executable, isExecutable: executable, isShared: false,
                      offset: 0, deviceMajor: path.hasPrefix("/") ? 8 : 0, deviceMinor: 1, inode: path.hasPrefix("/") ? 7 : 0,
                      path: path, isDeleted: false)
    }

    private static func object(_ mapping: MemoryMapping) -> LoadedObject {
        LoadedObject(path: mapping.path, isDeleted: false, buildID: nil, loadBias: mapping.start, mappings: [mapping],
                     readablePath: mapping.path)
    }

    @Test func nearAddress_withRoomBelowTheObject_endsRightBelowIt() {
        let program = Self.mapping(0x5555_0000_0000, 0x5555_0001_0000, path: "/usr/bin/p", executable: true)
        let heap = Self.mapping(0x5555_0001_0000, 0x5555_0003_0000, path: "[heap]")
        let libc = Self.mapping(0x7f00_0000_0000, 0x7f00_0020_0000, path: "/usr/lib/libc.so.6", executable: true)
        let address = PatchLoader.nearAddress(for: Self.image, near: Self.object(program), mappings: [program, heap, libc])
        #expect(address == program.start - Self.image)
    }

    @Test func nearAddress_withTheObjectCrowdedBelowAndTheHeapAbove_keepsAGibibyteForTheHeapToGrow() {
        let below = Self.mapping(0x5554_0000_0000, 0x5555_0000_0000, path: "[anon]")
        let program = Self.mapping(0x5555_0000_0000, 0x5555_0001_0000, path: "/usr/bin/p", executable: true)
        let heap = Self.mapping(0x5555_0001_0000, 0x5555_0003_0000, path: "[heap]")
        let libc = Self.mapping(0x7f00_0000_0000, 0x7f00_0020_0000, path: "/usr/lib/libc.so.6", executable: true)
        let address = PatchLoader.nearAddress(for: Self.image, near: Self.object(program), mappings: [below, program, heap, libc])
        #expect(address == heap.end + (1 << 30))
    }

    @Test func nearAddress_aboveTheLastMapping_usesTheHoleUpToTheEndOfTheAddressSpace() {
        let below = Self.mapping(0x7ffe_0000_0000, 0x7fff_0000_0000, path: "[anon]")
        let library = Self.mapping(0x7fff_0000_0000, 0x7fff_0001_0000, path: "/usr/lib/libtop.so", executable: true)
        let address = PatchLoader.nearAddress(for: Self.image, near: Self.object(library), mappings: [below, library])
        #expect(address == library.end)
    }

    @Test func nearAddress_withNoHoleWithinReach_isNil() {
        let below = Self.mapping(0x5554_0000_0000, 0x5555_0000_0000, path: "[anon]")
        let program = Self.mapping(0x5555_0000_0000, 0x5555_0001_0000, path: "/usr/bin/p", executable: true)
        let above = Self.mapping(0x5555_0001_0000, 0x5556_0000_0000, path: "[anon]")
        #expect(PatchLoader.nearAddress(for: Self.image, near: Self.object(program), mappings: [below, program, above]) == nil)
    }
}
