@testable import AgentCore
import Engine
import Testing

/// The exec gate's hold budget: a token bucket that bounds how many processes it holds.
@Suite struct HoldBudgetTests {
    private let start = Monotonic.now

    private func at(_ milliseconds: UInt64) -> Monotonic.Instant { start.adding(microseconds: milliseconds * 1000) }

    /// How many of `count` takes at `milliseconds` `budget` grants.
    private func takes(_ budget: inout HoldBudget, _ count: Int, at milliseconds: UInt64) -> Int {
        var granted = 0
        for _ in 0..<count where budget.take(now: at(milliseconds)) { granted += 1 }
        return granted
    }

    @Test func take_allowsTheBurstAtOnce_thenRefusesUntilItRefills() {
        var budget = HoldBudget(capacity: 3, perSecond: 10)
        let burst = takes(&budget, 4, at: 0)
        #expect(burst == 3, "the burst, then nothing")
        let halfToken = takes(&budget, 1, at: 50)
        #expect(halfToken == 0, "half a token after 50 ms at 10 a second")
        let oneToken = takes(&budget, 2, at: 100)
        #expect(oneToken == 1, "one token after 100 ms")
    }

    @Test func take_neverBanksMoreThanTheBurst_afterALongQuiet() {
        var budget = HoldBudget(capacity: 2, perSecond: 1_000)
        _ = takes(&budget, 1, at: 0)
        let taken = takes(&budget, 10, at: 60_000)
        #expect(taken == 2, "a minute of quiet refills the burst, no more")
    }

    @Test func take_atTheRate_keepsUpWithItsRate() {
        var budget = HoldBudget(capacity: 1, perSecond: 100)
        // One request every 10 ms for a second: each finds its token.
        var granted = 0
        for step in 0..<100 { granted += takes(&budget, 1, at: UInt64(step) * 10) }
        #expect(granted == 100)
    }
}
