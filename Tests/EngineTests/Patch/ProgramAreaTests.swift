import Architecture
import Artifact
import HotpatchFixtures
import Testing
@testable import Engine

/// The room a load's programs need in spare code: worked out once per patch file for an image
/// above 4 GiB, where the programs' length does not depend on the address.
@Suite struct ProgramAreaTests {
    /// What `PatchLoader.areaBytes` works out for `patch` at `path` with its image at `near`.
    private static func encoded(_ patch: PatchObject, path: String, near: UInt64) -> UInt64 {
        PatchLoader.areaBytes(path: path, near: near, total: patch.imageSize + PatchImageMarker.pageSize,
                              segments: PatchLoader.segmentMappings(of: patch, base: near + PatchImageMarker.pageSize, fd: 3))
    }

    @Test func farAreaBytes_isWhatTheProgramsTakeAtEveryFarAddress_whileAnImageBelow4GiBEncodesShorter() throws {
        let path = try FixtureBuilder().patchObject("patch_level1.c")
        let patch = try PatchObject(path: path)
        let far = PatchLoader.farAreaBytes(of: patch, path: path)
        let page = HostArchitecture.pageSize
        for near in [UInt64(1) << 32, 0x5555_5555_0000, 0x7f12_3456_7000, 0x7fff_ffff_0000 - 16 * page, (UInt64(1) << 56) - 64 * page] {
            #expect(Self.encoded(patch, path: path, near: near) == far, "image at 0x\(String(near, radix: 16))")
        }
        // Below 4 GiB (near a non-PIE executable) the addresses take shorter immediates: worked
        // out for the address, never taken from the far figure.
        #expect(Self.encoded(patch, path: path, near: 0x40_0000 - 16 * page) < far)
        #expect(PatchLoader.farAddresses.contains(UInt64(1) << 32) && !PatchLoader.farAddresses.contains(UInt64(UInt32.max)))
    }

    /// Spare code ends anywhere: the area's start, the stub and the program each round to 16
    /// bytes, and the bytes worked out must leave room for all three roundings (a static
    /// executable's spare code once left a program 4 bytes short of its path).
    @Test func anAreaOfTheBytesWorkedOut_takesItsNameProgramAndStub_whereverItEnds() {
        let stubBytes = 180
        for nameBytes in 1...48 {
            for programBytes in 500...532 {
                let bytes = ProgramArea.bytes(nameBytes: nameBytes, programBytes: programBytes, stubBytes: stubBytes)
                for end in UInt64(0x48_d000)...UInt64(0x48_d000 + 16) {
                    let area = ProgramArea(ending: end, bytes: bytes, stubBytes: stubBytes)
                    #expect(area.start >= end - bytes && area.stub + UInt64(stubBytes) <= end,
                            "area \(area) overruns [\(end - bytes), \(end))")
                    let offset = area.programOffset(programBytes: programBytes, nameBytes: nameBytes)
                    #expect(offset != nil, "name \(nameBytes), program \(programBytes), end \(end)")
                    if let offset { #expect(offset % 16 == 0 && area.start + offset + UInt64(programBytes) <= area.stub) }
                }
            }
        }
        // One byte short of room for the name: refused, never written over the program.
        let area = ProgramArea(start: 0x1000, stub: 0x1000 + 64)
        #expect(area.programOffset(programBytes: 32, nameBytes: 32) == 32)
        #expect(area.programOffset(programBytes: 32, nameBytes: 33) == nil)
        #expect(area.programOffset(programBytes: 64, nameBytes: 1) == nil)
    }
}
