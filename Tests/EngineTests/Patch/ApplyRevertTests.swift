import Engine
import Foundation
import HotpatchFixtures
import Testing

@Suite(.serialized) struct ApplyRevertTests {
    @Test func apply_onEightBusyThreads_changesBehaviourLiveAndRevertRestoresIt() throws {
        let hotpatches = try Live.victimHotpatches()
        let victim = try Live.startVictim(["--threads", "8"])
        defer { victim.stop() }
        #expect(try Live.behaviour(victim) == "parse_length(100)=100 banner=1")

        let target = hotpatches.level1.targets[0]
        let applied = try Live.reconcile(victim, desired: target, known: [target])
        #expect(applied.outcome == .applied, "\(applied.outcome)")
        #expect(applied.threadCount == 9)
        #expect(applied.pauseMicroseconds != nil)
        #expect(try Live.behaviour(victim) == "parse_length(100)=64 banner=2")

        let again = try Live.reconcile(victim, desired: target, known: [target])
        #expect(again.outcome == .alreadyApplied)

        let reverted = try Live.reconcile(victim, desired: nil, known: [target])
        #expect(reverted.outcome == .reverted, "\(reverted.outcome)")
        #expect(try Live.behaviour(victim) == "parse_length(100)=100 banner=1")
        #expect(victim.isAlive)
    }
}
