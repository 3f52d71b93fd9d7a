import Foundation
import HotpatchFixtures
import Testing
@testable import Engine

/// The original bytes of a redirected function, read from a mapped file once and then known by
/// their digest to every later revert (or new level) of another process.
@Suite struct OriginalBytesCacheTests {
    @Test func noteOriginalBytes_isFoundByItsDigestOnly() {
        let cache = ObjectCache()
        let bytes: [UInt8] = [0x55, 0x48, 0x89, 0xE5, 0x90]
        let digest = Patcher.digest(bytes)
        #expect(cache.originalBytes(digest: digest) == nil)
        cache.noteOriginalBytes(bytes, digest: digest)
        #expect(cache.originalBytes(digest: digest) == bytes)
        #expect(cache.originalBytes(digest: Patcher.digest([0x90])) == nil)
    }

    @Test func noteOriginalBytes_keepsNeitherALongFunctionNorMoreThanItsLimit() {
        let cache = ObjectCache()
        let long = [UInt8](repeating: 0xCC, count: ObjectCache.longestOriginalKept + 1)
        cache.noteOriginalBytes(long, digest: Patcher.digest(long))
        #expect(cache.originalBytes(digest: Patcher.digest(long)) == nil)

        let kept = (0..<ObjectCache.originalsKept).map { [UInt8](String($0).utf8) }
        for bytes in kept { cache.noteOriginalBytes(bytes, digest: Patcher.digest(bytes)) }
        let oneMore = [UInt8]("one more".utf8)
        cache.noteOriginalBytes(oneMore, digest: Patcher.digest(oneMore))
        #expect(cache.originalBytes(digest: Patcher.digest(oneMore)) == nil)
        #expect(kept.allSatisfy { cache.originalBytes(digest: Patcher.digest($0)) == $0 })
    }
}

extension LivePatchTests {
    @Test func revert_byARestartedAgent_ofASecondProcess_restoresTheOriginalBytesTheFirstProcesssFileGave() throws {
        let target = try Live.victimHotpatches().level1.targets[0]
        let patcher = Patcher()
        let first = try Live.startVictim(["--threads", "2"])
        defer { first.stop() }
        let second = try Live.startVictim(["--threads", "2"])
        defer { second.stop() }
        for victim in [first, second] {
            #expect(try Live.reconcile(victim, desired: target, known: [target], patcher: patcher).outcome == .applied)
            #expect(try Live.behaviour(victim) == Live.level1)
        }
        // A first apply finds the original bytes in memory, proven by their digest, and keeps them:
        // the next process's apply compares bytes instead of hashing them again.
        #expect(target.redirections.allSatisfy { patcher.cache.originalBytes(digest: $0.sha256) != nil })

        // An agent started since knows nothing: the entries hold our jumps, and the original
        // comes from the first process's mapped file, then serves the second process too.
        let restarted = Patcher()
        #expect(target.redirections.allSatisfy { restarted.cache.originalBytes(digest: $0.sha256) == nil })
        #expect(try Live.reconcile(first, desired: nil, known: [target], patcher: restarted).outcome == .reverted)
        #expect(try Live.behaviour(first) == Live.original)
        #expect(target.redirections.allSatisfy { restarted.cache.originalBytes(digest: $0.sha256) != nil })

        #expect(try Live.reconcile(second, desired: nil, known: [target], patcher: restarted).outcome == .reverted)
        #expect(try Live.behaviour(second) == Live.original)
        #expect(first.isAlive && second.isAlive)
    }
}
