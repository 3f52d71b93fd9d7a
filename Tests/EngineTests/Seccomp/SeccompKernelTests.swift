import Glibc
import Testing
@testable import Engine

private func fixture() throws -> SeccompFixture { try SeccompFixture.shared.get() }

@Test func seccomp_systemdMemoryDenyWriteExecute_refusesOnlyWritableExecutableMappings() throws {
    let f = try fixture()
    let filters = try f.installed(["mdwe", "sandbox"])
    func verdict(_ nr: Int32, _ args: [UInt64]) -> SeccompAction {
        SeccompEvaluator.evaluate(filters, for: SeccompData(systemCall: nr, arguments: args))
    }
    let anonymous = UInt64(MAP_PRIVATE | MAP_ANONYMOUS)
    #expect(verdict(9, [0, 4096, UInt64(PROT_READ | PROT_EXEC), anonymous, UInt64.max, 0]) == .allow)
    #expect(verdict(9, [0, 4096, UInt64(PROT_READ | PROT_WRITE), anonymous, UInt64.max, 0]) == .allow)
    #expect(verdict(9, [0, 4096, UInt64(PROT_READ | PROT_WRITE | PROT_EXEC), anonymous, UInt64.max, 0]) == .errno(UInt16(EPERM)))
    #expect(verdict(10, [0x7f00_0000_0000, 4096, UInt64(PROT_READ | PROT_EXEC)]) == .errno(UInt16(EPERM)))
    #expect(verdict(10, [0x7f00_0000_0000, 4096, UInt64(PROT_READ)]) == .allow)
    #expect(verdict(329, [0x7f00_0000_0000, 4096, UInt64(PROT_EXEC), UInt64.max]) == .errno(UInt16(EPERM)))
}

@Test func seccomp_sandboxFilter_killsOnOpenatRefusesMemfdAndAllowsClose() throws {
    let filters = try fixture().installed(["mdwe", "sandbox"])
    func verdict(_ data: SeccompData) -> SeccompAction { SeccompEvaluator.evaluate(filters, for: data) }
    #expect(verdict(SeccompData(systemCall: 257, arguments: [UInt64(bitPattern: -100), 0x1000, 0])) == .killProcess)
    #expect(verdict(SeccompData(systemCall: 319, arguments: [0x1000, 0])) == .errno(UInt16(EACCES)))
    #expect(verdict(SeccompData(systemCall: 3, arguments: [5])) == .allow)
    #expect(verdict(SeccompData(systemCall: 11, arguments: [0x7f00_0000_0000, 4096])) == .allow)
    #expect(verdict(SeccompData(systemCall: 20, architecture: 0x4000_0003)) == .killProcess)
    #expect(verdict(SeccompData(systemCall: 0x4000_0009)) == .killProcess)
}

@Test func seccomp_forEveryCallMadeUnderRealFilters_evaluatorAgreesWithTheKernel() throws {
    let f = try fixture()
    #expect(f.calls.count >= 20)
    for call in f.calls {
        let action = SeccompEvaluator.evaluate(try f.installed(call.filters), for: call.data)
        let expected = kernelObservation(of: action)
        #expect(call.outcome == expected || (expected == "ok" && call.outcome.hasPrefix("ok ")),
                "\(call.name): kernel did '\(call.outcome)', evaluator said \(action)")
    }
}

@Test func seccomp_forEveryCandidateFilter_validationAgreesWithTheKernel() throws {
    let f = try fixture()
    #expect(f.loads.count >= 20)
    for load in f.loads {
        let instructions = try #require(f.filters[load.name])
        let accepted = (try? SeccompFilter(instructions: instructions)) != nil
        #expect(accepted == load.accepted, "\(load.name): kernel accepted=\(load.accepted), validator accepted=\(accepted)")
    }
}
