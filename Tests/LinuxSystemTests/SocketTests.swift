import Foundation
import Glibc
@testable import LinuxSystem
import TestSupport
import Testing

@Suite struct SocketTests {
    @Test func aSocketPairsPeerIsThisProcessWithItsIds() throws {
        let (one, other) = try Socket.unixStreamPair(nonBlocking: false, subject: "a test pair")
        defer { Descriptor.close(one); Descriptor.close(other) }
        let peer = try Socket.peerCredentials(one, subject: "a test pair")
        #expect(peer == PeerCredentials(pid: ProcessID.current, uid: getuid(), gid: getgid()))
        #expect(peer.isRoot == (getuid() == 0))
    }

    @Test func aListenerAcceptsAConnectionAndSeesWhoConnected() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let address = try #require(UnixSocketAddress(path: scratch.path + "/s.sock"))
        let listener = try Socket.unixStream(nonBlocking: true, subject: address.path)
        defer { Descriptor.close(listener) }
        try Socket.bind(listener, to: address)
        try Socket.listen(listener, backlog: 4, subject: address.path)
        #expect(try Socket.accept(listener, subject: address.path) == nil)  // Nothing pending yet.

        let client = try Socket.unixStream(nonBlocking: false, subject: address.path)
        defer { Descriptor.close(client) }
        try Socket.connect(client, to: address)
        #expect(try Descriptor.waitReadable([listener], timeoutMilliseconds: 5000, subject: address.path) == [true])
        let connection = try #require(try Socket.accept(listener, subject: address.path))
        defer { Descriptor.close(connection) }
        #expect(try Socket.peerCredentials(connection, subject: address.path).pid == ProcessID.current)

        let sent = try Socket.send(client, Array("hello\n".utf8), subject: "client")
        #expect(sent == 6)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try Descriptor.waitReadable([connection], timeoutMilliseconds: 5000, subject: "server") == [true])
        let count = try Descriptor.read(connection, into: &buffer, subject: "server")
        #expect(count == 6)
        #expect(Array(buffer[0..<6]) == Array("hello\n".utf8))
        // Non-blocking and drained: nil, not an error.
        #expect(try Descriptor.read(connection, into: &buffer, subject: "server") == nil)
    }

    @Test func connectingToAMissingSocketIsENOENTNamingItsPath() throws {
        let scratch = try TemporaryDirectory(prefix: "linuxsystem-test")
        defer { scratch.remove() }
        let address = try #require(UnixSocketAddress(path: scratch.path + "/none.sock"))
        let client = try Socket.unixStream(nonBlocking: false, subject: address.path)
        defer { Descriptor.close(client) }
        #expect(throws: SystemError(call: "connect", errno: ENOENT, subject: address.path)) {
            try Socket.connect(client, to: address)
        }
    }

    @Test func anAddressRefusesAnEmptyOrTooLongPath() {
        #expect(UnixSocketAddress(path: "") == nil)
        #expect(UnixSocketAddress(path: "/" + String(repeating: "x", count: UnixSocketAddress.maximumPathBytes)) == nil)
        #expect(UnixSocketAddress(path: String(repeating: "x", count: UnixSocketAddress.maximumPathBytes)) != nil)
    }

    @Test func aWokenChannelStaysReadable() throws {
        let channel = try WakeupChannel()
        defer { channel.close() }
        #expect(try Descriptor.waitReadable([channel.read], timeoutMilliseconds: 0, subject: "wake-up") == [false])
        channel.wake()
        channel.wake()
        for _ in 0..<2 {
            #expect(try Descriptor.waitReadable([channel.read], timeoutMilliseconds: 5000, subject: "wake-up") == [true])
        }
    }
}
