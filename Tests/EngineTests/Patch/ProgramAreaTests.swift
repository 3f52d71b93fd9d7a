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
}
