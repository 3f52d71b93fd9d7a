@testable import AgentCore
import Testing

/// The admission rules and the refusal tally, without sockets.
@Suite struct ControlConnectionLimitsTests {
    @Test func limits_byDefault_keepAQuarterOfThe32PlacesForRoot_andFourPerUser() {
        let limits = ControlLimits()

        #expect(limits.maximumConnections == 32)
        #expect(limits.maximumConnectionsPerUser == 4)
        #expect(limits.reservedForRoot == 8)
        #expect(limits.unprivilegedShare == 24)
    }

    @Test func gate_whenAUserHoldsItsShare_refusesItButAdmitsAnotherUserAndRoot() {
        let gate = ControlConnectionGate(limits: ControlLimits(maximumConnections: 32, maximumConnectionsPerUser: 2))

        #expect(gate.enter(uid: 1000) == nil)
        #expect(gate.enter(uid: 1000) == nil)
        #expect(gate.enter(uid: 1000) == .userLimit(uid: 1000, limit: 2))
        #expect(gate.enter(uid: 1001) == nil)
        #expect(gate.enter(uid: 0) == nil)

        gate.leave(uid: 1000)
        #expect(gate.enter(uid: 1000) == nil, "a place given back is taken again")
    }

    @Test func gate_countsPeersOfUnknownUIDAsOneUnprivilegedUser() {
        let gate = ControlConnectionGate(limits: ControlLimits(maximumConnections: 32, maximumConnectionsPerUser: 1))

        #expect(gate.enter(uid: nil) == nil)
        #expect(gate.enter(uid: nil) == .userLimit(uid: nil, limit: 1))
        #expect(ControlAdmissionRefusal.userLimit(uid: nil, limit: 1).description
            == "peers of unknown uid already have 1 control connections open; try again")
    }

    @Test func gate_whenOtherUsersFillTheirShare_keepsRootsPlacesUntilTheTotalCap() {
        let gate = ControlConnectionGate(limits: ControlLimits(maximumConnections: 8, maximumConnectionsPerUser: 2, reservedForRoot: 2))

        for uid in UInt32(1000)..<1003 {
            #expect(gate.enter(uid: uid) == nil)
            #expect(gate.enter(uid: uid) == nil)
        }
        #expect(gate.enter(uid: 1003) == .unprivilegedShare(limit: 6))
        #expect(gate.enter(uid: 0) == nil)
        #expect(gate.enter(uid: 0) == nil)
        #expect(gate.enter(uid: 0) == .total(limit: 8))

        gate.leave(uid: 0)
        #expect(gate.enter(uid: 1003) == .unprivilegedShare(limit: 6), "root's place is not given to another user")
        #expect(gate.enter(uid: 0) == nil)
    }

    @Test func tally_reportsTheFirstRefusalAtOnce_thenOneSummaryPerInterval() throws {
        var tally = ControlRefusalTally(interval: .seconds(60))
        let start = ContinuousClock.now

        #expect(tally.record(uid: 65534, at: start) == .init(count: 1, uids: "65534"))
        #expect(tally.nextReport == nil, "nothing waits")
        for second in 1...50 {
            #expect(tally.record(uid: second % 2 == 0 ? 65534 : 1000, at: start + .seconds(second)) == nil)
        }
        #expect(tally.record(uid: nil, at: start + .seconds(59)) == nil)
        #expect(tally.nextReport == start + .seconds(60))
        #expect(tally.reportIfDue(at: start + .seconds(59)) == nil)

        #expect(tally.reportIfDue(at: start + .seconds(60)) == .init(count: 51, uids: "1000,65534,unknown"))
        #expect(tally.nextReport == nil)
        #expect(tally.reportIfDue(at: start + .seconds(200)) == nil, "no refusal, no line")
    }

    @Test func tally_flush_reportsWhatIsStillCounted_once() {
        var tally = ControlRefusalTally(interval: .seconds(60))
        let start = ContinuousClock.now
        _ = tally.record(uid: 7, at: start)
        _ = tally.record(uid: 7, at: start + .seconds(1))
        _ = tally.record(uid: 7, at: start + .seconds(2))

        #expect(tally.flush() == .init(count: 2, uids: "7"))
        #expect(tally.flush() == nil)
    }
}
