import Glibc
import LinuxSystem
import Testing
@testable import Engine

/// The parsed output of the C seccomp fixture, compiled and run once per test process.
struct SeccompFixture: Sendable {
    /// One call the fixture made in a child under installed filters, and what the kernel did.
    struct Call: Sendable {
        var name: String
        /// Filter names in install order (the kernel runs the last one first).
        var filters: [String]
        var data: SeccompData
        /// "ok HEX", "errno HEX", "trap HEX" or "signal HEX".
        var outcome: String
    }

    var filters: [String: [BPFInstruction]] = [:]
    /// Candidate filter name → whether the kernel accepted it.
    var loads: [(name: String, accepted: Bool)] = []
    var calls: [Call] = []

    /// Compiles and runs the fixture in a fresh temporary directory, once.
    static let shared: Result<SeccompFixture, any Error> = Result { try build() }

    /// Filters `names`, most recently installed first: the order PTRACE_SECCOMP_GET_FILTER gives.
    func installed(_ names: [String]) throws -> [SeccompFilter] {
        try names.reversed().map { name in
            guard let instructions = filters[name] else { throw FixtureError.setUp("no filter \(name)") }
            return try SeccompFilter(instructions: instructions)
        }
    }

    func call(_ name: String) throws -> Call {
        guard let call = calls.first(where: { $0.name == name }) else {
            throw FixtureError.setUp("fixture made no call \(name)")
        }
        return call
    }

    private static func build() throws -> SeccompFixture {
        let directory = try TemporaryDirectory(prefix: "seccomp-fixture")
        defer { directory.remove() }
        let program = try FixtureBuilder.compile(text: seccompFixtureSource, to: directory.file("fixture"), flags: ["-O1"])
        return try parse(try Program.succeed(program).stdout)
    }

    private static func parse(_ text: String) throws(FixtureError) -> SeccompFixture {
        var fixture = SeccompFixture()
        var outcomes: [String: String] = [:]
        let lines = text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        var i = 0
        func hex(_ s: String) throws(FixtureError) -> UInt64 {
            guard let v = UInt64(s, radix: 16) else { throw FixtureError.setUp("not hex: \(s)") }
            return v
        }
        while i < lines.count {
            let f = lines[i]
            i += 1
            switch f.first {
            case "filter":
                guard f.count == 3, let n = Int(f[2]), i + n <= lines.count else { throw FixtureError.setUp("bad \(f)") }
                var instructions: [BPFInstruction] = []
                for line in lines[i..<(i + n)] {
                    guard line.count == 4 else { throw FixtureError.setUp("bad instruction \(line)") }
                    instructions.append(BPFInstruction(code: UInt16(try hex(line[0])), jumpIfTrue: UInt8(try hex(line[1])),
                                                       jumpIfFalse: UInt8(try hex(line[2])), k: UInt32(try hex(line[3]))))
                }
                i += n
                fixture.filters[f[1]] = instructions
            case "load":
                fixture.loads.append((f[1], f[2] == "accepted"))
            case "result":
                outcomes[f[1]] = f[2...].joined(separator: " ")
            case "call":
                guard f.count == 11 else { throw FixtureError.setUp("bad \(f)") }
                var arguments: [UInt64] = []
                for word in f[5...] { arguments.append(try hex(word)) }
                let data = SeccompData(systemCall: Int32(truncatingIfNeeded: try hex(f[4])),
                                       architecture: UInt32(try hex(f[3])), arguments: arguments)
                fixture.calls.append(Call(name: f[1], filters: f[2].split(separator: ",").map(String.init),
                                          data: data, outcome: outcomes[f[1]] ?? "missing"))
            default:
                throw FixtureError.setUp("unexpected line \(f)")
            }
        }
        return fixture
    }
}

/// What a single-threaded process observes when it makes a call that meets `action`.
func kernelObservation(of action: SeccompAction) -> String {
    switch action {
    case .allow, .log: return "ok"
    case .errno(0): return "ok 0"
    case let .errno(number): return "errno \(String(number, radix: 16))"
    case let .trap(data): return "trap \(String(data, radix: 16))"
    case .killThread, .killProcess: return "signal \(String(SIGSYS, radix: 16))"
    case .trace, .userNotify: return "errno \(String(ENOSYS, radix: 16))"
    }
}
