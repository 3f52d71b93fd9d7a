import Foundation
import Glibc
import Testing
@testable import Artifact

/// The trusted-keys folder is read like any folder someone else might write: a key that is not a
/// regular file, is too large, or that a user other than root could change is refused with its
/// path, and reading never blocks (a FIFO once wedged the agent).
@Suite struct TrustedKeysFolderTests {
    /// Runs the fixture's verification on its own thread and gives up after `seconds`: a refusal
    /// that blocks is a failure, not a hang. `unblock` releases a blocked reader afterwards.
    private func refusalWithin(_ seconds: Double, _ fixture: ChannelFixture, unblock: () -> Void = {}) -> ChannelRefusal?? {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: ChannelRefusal?
        nonisolated(unsafe) let target = fixture
        let thread = Thread {
            outcome = target.refusal()
            done.signal()
        }
        thread.start()
        if done.wait(timeout: .now() + seconds) == .timedOut {
            unblock()
            _ = done.wait(timeout: .now() + 10)
            return .none
        }
        return .some(outcome)
    }

    private func expectRefused(_ fixture: ChannelFixture, path: String, reasonContains text: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let refusal = fixture.refusal()
        #expect(refusal?.path == path, "\(String(describing: refusal))", sourceLocation: sourceLocation)
        #expect(refusal?.reason.contains(text) == true, "\(String(describing: refusal))", sourceLocation: sourceLocation)
    }

    @Test func verify_whenKeysFolderHoldsAFIFO_refusesNamingItWithoutBlocking() throws {
        let fixture = try ChannelFixture()
        let fifo = fixture.keys + "/wedge.pub"
        #expect(mkfifo(fifo, 0o644) == 0)
        let outcome = refusalWithin(5, fixture) {
            // A writer lets the blocked open return; closing it gives the reader end of file.
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { close(writer) }
        }
        guard let refusal = outcome else {
            Issue.record("verification blocked on the FIFO \(fifo)")
            return
        }
        #expect(refusal?.path == fifo, "\(String(describing: refusal))")
        #expect(refusal?.reason.contains("FIFO") == true, "\(String(describing: refusal))")
    }

    @Test func verify_whenAKeyIsASymbolicLink_refusesNamingIt() throws {
        let fixture = try ChannelFixture()
        let link = fixture.keys + "/zero.pub"
        #expect(symlink("/dev/zero", link) == 0)
        expectRefused(fixture, path: link, reasonContains: "symbolic link")
    }

    @Test func verify_whenAKeyIsHuge_refusesNamingItWithoutReadingIt() throws {
        let fixture = try ChannelFixture()
        let huge = fixture.keys + "/huge.pub"
        let descriptor = open(huge, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(descriptor >= 0)
        #expect(ftruncate(descriptor, 1 << 40) == 0)  // sparse: a terabyte of zeros, like /dev/zero
        close(descriptor)
        expectRefused(fixture, path: huge, reasonContains: "larger than 4096 bytes")
    }

    @Test func verify_whenAKeyIsACharacterDevice_refusesNamingItWithoutOpeningIt() throws {
        try #require(geteuid() == 0, "needs root to mknod")
        let fixture = try ChannelFixture()
        let device = fixture.keys + "/zero.pub"
        #expect(mknod(device, S_IFCHR | 0o644, dev_t(1 << 8 | 5) /* makedev(1, 5): /dev/zero */) == 0)
        expectRefused(fixture, path: device, reasonContains: "character device")
    }

    @Test func verify_whenAKeyIsWritableByOthers_refusesNamingIt() throws {
        let fixture = try ChannelFixture()
        let key = fixture.keys + "/publisher.pub"
        chmod(key, 0o666)
        expectRefused(fixture, path: key, reasonContains: "mode 666 lets the group or others write")
    }

    @Test func verify_whenKeysFolderIsWritableByOthers_refusesNamingIt() throws {
        let fixture = try ChannelFixture()
        chmod(fixture.keys, 0o777)
        expectRefused(fixture, path: fixture.keys, reasonContains: "mode 777 lets the group or others write")
    }

    @Test func verify_whenKeysFolderOrAKeyIsOwnedByAnotherUser_refusesNamingIt() throws {
        try #require(geteuid() == 0, "needs root to chown")
        let fixture = try ChannelFixture()
        #expect(chown(fixture.keys, 65534, 65534) == 0)
        expectRefused(fixture, path: fixture.keys, reasonContains: "owned by uid 65534")
        #expect(chown(fixture.keys, 0, 0) == 0)
        #expect(chown(fixture.keys + "/publisher.pub", 65534, 65534) == 0)
        expectRefused(fixture, path: fixture.keys + "/publisher.pub", reasonContains: "owned by uid 65534")
    }

    @Test func verify_whenKeysFolderAndKeysAreOwnersOnly_accepts() throws {
        let fixture = try ChannelFixture()
        chmod(fixture.keys, 0o700)
        chmod(fixture.keys + "/publisher.pub", 0o600)
        #expect(fixture.refusal() == nil)
    }
}
