import Foundation
import Glibc
import LinuxSystem
import Testing
@testable import Artifact

@Suite struct ChannelFileDigestTests {
    @Test func compute_hashesAFileLargerThanOneChunk() throws {
        let scratch = try TemporaryDirectory(prefix: "digest-test")
        let bytes = (0..<(ChannelFiles.chunkSize + 12_345)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let path = try scratch.write("big", bytes: bytes)
        let digest = try ChannelFileDigest.compute(path: path)
        #expect(digest.sha256 == ChannelKeys.sha256(bytes))
        #expect(digest.length == UInt64(bytes.count))
    }

    @Test func compute_whenFileIsMissing_throwsTheFailedCallAsAnArtifactError() throws {
        let scratch = try TemporaryDirectory(prefix: "digest-test")
        let missing = scratch.file("missing.deb")
        #expect(throws: ArtifactError.system(SystemError(call: "open", errno: ENOENT, subject: missing))) {
            _ = try ChannelFileDigest.compute(path: missing)
        }
    }
}
