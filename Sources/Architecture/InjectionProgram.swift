/// System calls that injected code makes one after another in a target thread, with no stop in
/// between, each result stored for the tracer to read and checked before the next call runs: the
/// first call whose result is not the expected one ends the sequence. Then the cleanups run
/// (whatever happened before), and last the ending, a call made on the self-restoring stub's system
/// call instruction (`Architecture.injectionStub`): the tracer stops the thread there, or, when no
/// tracer is left, the thread runs on into the stub, which puts it back as it was.
public struct InjectionProgram: Sendable, Equatable {
    /// A system call argument.
    public enum Argument: Sendable, Equatable {
        /// A value known when the program is written.
        case value(UInt64)
        /// The result of the program's call at this index (a descriptor it opened).
        case resultOf(Int)
    }

    /// What a call must return for the program to go on.
    public enum Expectation: Sendable, Equatable {
        /// A descriptor: any non-negative result.
        case descriptor
        /// Exactly this value (the address a fixed mapping must land at).
        case value(UInt64)
    }

    /// One call of the sequence.
    public struct Call: Sendable, Equatable {
        /// The system call number.
        public var number: Int
        /// At most six arguments.
        public var arguments: [Argument]
        /// What it must return.
        public var expectation: Expectation

        /// Names each part.
        public init(number: Int, arguments: [Argument], expectation: Expectation) {
            precondition(arguments.count <= 6, "at most six system call arguments")
            self.number = number
            self.arguments = arguments
            self.expectation = expectation
        }
    }

    /// A call that runs after the sequence however it ended, when its `guardArgument` (a
    /// descriptor) is not negative: a call that never ran, or failed, yields none.
    public struct Cleanup: Sendable, Equatable {
        /// The system call number.
        public var number: Int
        /// At most six arguments.
        public var arguments: [Argument]
        /// The index into `arguments` of the descriptor the call needs.
        public var guardArgument: Int

        /// Names each part.
        public init(number: Int, arguments: [Argument], guardArgument: Int) {
            precondition(arguments.count <= 6 && guardArgument < arguments.count, "at most six arguments, the guard among them")
            self.number = number
            self.arguments = arguments
            self.guardArgument = guardArgument
        }
    }

    /// The call that ends the program, made on the stub's system call instruction.
    public struct Ending: Sendable, Equatable {
        /// The system call number.
        public var number: Int
        /// At most six arguments, all known when the program is written.
        public var arguments: [UInt64]

        /// Names each part.
        public init(number: Int, arguments: [UInt64]) {
            precondition(arguments.count <= 6, "at most six system call arguments")
            self.number = number
            self.arguments = arguments
        }
    }

    /// The sequence.
    public var calls: [Call]
    /// What runs after it.
    public var cleanups: [Cleanup]
    /// The last call.
    public var ending: Ending

    /// Names each part; a `resultOf` argument must name an earlier call of the sequence.
    public init(calls: [Call], cleanups: [Cleanup], ending: Ending) {
        for (index, call) in calls.enumerated() {
            for case let .resultOf(earlier) in call.arguments { precondition(earlier < index, "a result is used before it exists") }
        }
        for cleanup in cleanups {
            for case let .resultOf(earlier) in cleanup.arguments { precondition(earlier < calls.count, "no such call") }
        }
        self.calls = calls
        self.cleanups = cleanups
        self.ending = ending
    }

    /// The same program with `first` run before its calls: every `resultOf` of the program then
    /// names the same call at its new index. Its results start with `first`'s.
    public func prefixed(by first: [Call]) -> InjectionProgram {
        func shifted(_ arguments: [Argument]) -> [Argument] {
            arguments.map { argument in
                if case let .resultOf(index) = argument { return .resultOf(index + first.count) }
                return argument
            }
        }
        return InjectionProgram(
            calls: first + calls.map { Call(number: $0.number, arguments: shifted($0.arguments), expectation: $0.expectation) },
            cleanups: cleanups.map { Cleanup(number: $0.number, arguments: shifted($0.arguments), guardArgument: $0.guardArgument) },
            ending: ending)
    }
}

/// An `InjectionProgram` as code. Its results go to the stack it starts with: `resultCount`
/// 8-byte slots from its stack pointer up (`stackBytes`), which must be writable and used by
/// nothing else (the stub uses the stack below), the calls' slots first, then the cleanups'; each
/// holds `notRun` until its call runs.
public struct EncodedInjectionProgram: Sendable, Equatable {
    /// The code.
    public var bytes: [UInt8]
    /// How many result slots it fills.
    public var resultCount: Int

    /// The value a result slot holds while its call has not run: not a result any call gives.
    public static let notRun = Int64.min

    /// Names each part.
    public init(bytes: [UInt8], resultCount: Int) {
        self.bytes = bytes
        self.resultCount = resultCount
    }

    /// The stack the slots take, rounded to keep the stack pointer 16-byte aligned.
    public var stackBytes: Int { (resultCount * 8 + 15) & ~15 }

    /// The results read back from the slots (`resultCount` little-endian words): nil where the
    /// call did not run.
    public static func results(from slots: [UInt8]) -> [Int64?] {
        stride(from: 0, to: slots.count - slots.count % 8, by: 8).map { start in
            var word: UInt64 = 0
            for index in 0..<8 { word |= UInt64(slots[start + index]) << UInt64(8 * index) }
            let value = Int64(bitPattern: word)
            return value == notRun ? nil : value
        }
    }
}
