import Foundation
import Testing
@testable import Engine

/// Writers racing readers on four threads: every write is kept (a writer has the value alone),
/// and no reader ever sees a value go back (a reader never sees a write half done).
@Test func readMostly_whenWritersRaceReaders_keepsEveryWriteAndReadersNeverSeeItGoBack() {
    let shared = ReadMostly<[Int]>([])
    let rounds = 2_000
    let wentBack = ReadMostly<Bool>(false)
    DispatchQueue.concurrentPerform(iterations: 4) { worker in
        var seen = 0
        for round in 0..<rounds {
            if round % 4 == worker % 4 {
                shared.write { $0.append(worker) }
            } else {
                let count = shared.read { $0.count }
                if count < seen { wentBack.write { $0 = true } }
                seen = count
            }
        }
    }
    #expect(shared.read { $0.count } == rounds)
    #expect(shared.read { values in (0..<4).map { worker in values.filter { $0 == worker }.count } } == [500, 500, 500, 500])
    #expect(!wentBack.read { $0 })
}

/// A write that throws changes what it changed before the throw, and the lock is free again.
@Test func readMostly_whenAWriteThrows_releasesTheLock() throws {
    struct Refused: Error {}
    let shared = ReadMostly<Int>(1)
    #expect(throws: Refused.self) { try shared.write { value in value = 2; throw Refused() } }
    #expect(shared.read { $0 } == 2)
    shared.write { $0 = 3 }
    #expect(shared.read { $0 } == 3)
}
