import Glibc

/// Classic BPF opcode parts (linux/bpf_common.h, linux/filter.h).
enum BPFCode {
    static let ld: UInt16 = 0x00, ldx: UInt16 = 0x01, st: UInt16 = 0x02, stx: UInt16 = 0x03
    static let alu: UInt16 = 0x04, jmp: UInt16 = 0x05, ret: UInt16 = 0x06, misc: UInt16 = 0x07
    static let w: UInt16 = 0x00
    static let imm: UInt16 = 0x00, abs: UInt16 = 0x20, mem: UInt16 = 0x60, len: UInt16 = 0x80
    static let add: UInt16 = 0x00, sub: UInt16 = 0x10, mul: UInt16 = 0x20, div: UInt16 = 0x30
    static let or: UInt16 = 0x40, and: UInt16 = 0x50, lsh: UInt16 = 0x60, rsh: UInt16 = 0x70
    static let neg: UInt16 = 0x80, xor: UInt16 = 0xa0
    static let ja: UInt16 = 0x00, jeq: UInt16 = 0x10, jgt: UInt16 = 0x20, jge: UInt16 = 0x30, jset: UInt16 = 0x40
    static let k: UInt16 = 0x00, x: UInt16 = 0x08, a: UInt16 = 0x10
    static let tax: UInt16 = 0x00, txa: UInt16 = 0x80
    /// Size of `struct seccomp_data`, what BPF_LEN loads in a seccomp filter.
    static let seccompDataSize: UInt32 = 64
    /// Scratch memory words (BPF_MEMWORDS).
    static let memoryWords: UInt32 = 16
}

/// An arithmetic operation of the BPF machine on 32-bit values.
enum BPFArithmetic: Sendable {
    case add, subtract, multiply, divide, or, and, xor, shiftLeft, shiftRight
}

/// A comparison of a conditional jump: A against K or X, unsigned.
enum BPFComparison: Sendable {
    case equal, greater, greaterOrEqual, anyBitSet
}

/// One decoded instruction, with its operands already checked.
enum BPFOperation: Sendable {
    case loadData(offset: UInt32)
    case loadImmediateA(UInt32)
    case loadImmediateX(UInt32)
    case loadMemoryA(Int)
    case loadMemoryX(Int)
    case storeA(Int)
    case storeX(Int)
    case arithmeticK(BPFArithmetic, UInt32)
    case arithmeticX(BPFArithmetic)
    case negate
    case jump(UInt32)
    case jumpK(BPFComparison, UInt32, ifTrue: Int, ifFalse: Int)
    case jumpX(BPFComparison, ifTrue: Int, ifFalse: Int)
    case copyAToX
    case copyXToA
    case returnK(UInt32)
    case returnA
}

/// The load-time checks of Linux for seccomp filters, producing the decoded program.
enum BPFValidator {
    static func decode(_ instructions: [BPFInstruction]) throws -> [BPFOperation] {
        func reject(_ reason: String) -> EngineError {
            .systemCall(name: "seccomp", errno: EINVAL, subject: "filter \(reason)")
        }
        let count = instructions.count
        guard count >= 1, count <= SeccompFilter.maximumLength else {
            throw reject("has \(count) instructions (must be 1...\(SeccompFilter.maximumLength))")
        }
        typealias C = BPFCode
        var program: [BPFOperation] = []
        program.reserveCapacity(count)
        for (pc, instruction) in instructions.enumerated() {
            let k = instruction.k
            func bad(_ reason: String) -> EngineError {
                reject("instruction \(pc) (code 0x\(String(instruction.code, radix: 16)), k \(k)): \(reason)")
            }
            func memory() throws -> Int {
                guard k < C.memoryWords else { throw bad("scratch memory index out of 0...15") }
                return Int(k)
            }
            func conditional(_ comparison: BPFComparison, x: Bool) throws -> BPFOperation {
                let ifTrue = pc + 1 + Int(instruction.jumpIfTrue), ifFalse = pc + 1 + Int(instruction.jumpIfFalse)
                guard ifTrue < count, ifFalse < count else { throw bad("jump past the end") }
                return x ? .jumpX(comparison, ifTrue: ifTrue, ifFalse: ifFalse)
                         : .jumpK(comparison, k, ifTrue: ifTrue, ifFalse: ifFalse)
            }
            let operation: BPFOperation
            switch instruction.code {
            case C.ld | C.w | C.abs:
                guard k < C.seccompDataSize, k & 3 == 0 else {
                    throw bad("load outside struct seccomp_data or not word-aligned")
                }
                operation = .loadData(offset: k)
            case C.ld | C.w | C.len: operation = .loadImmediateA(C.seccompDataSize)
            case C.ldx | C.w | C.len: operation = .loadImmediateX(C.seccompDataSize)
            case C.ld | C.imm: operation = .loadImmediateA(k)
            case C.ldx | C.imm: operation = .loadImmediateX(k)
            case C.ld | C.mem: operation = .loadMemoryA(try memory())
            case C.ldx | C.mem: operation = .loadMemoryX(try memory())
            case C.st: operation = .storeA(try memory())
            case C.stx: operation = .storeX(try memory())
            case C.alu | C.neg: operation = .negate
            case C.misc | C.tax: operation = .copyAToX
            case C.misc | C.txa: operation = .copyXToA
            case C.ret | C.k: operation = .returnK(k)
            case C.ret | C.a: operation = .returnA
            case C.jmp | C.ja:
                guard k < UInt32(count - 1 - pc) else { throw bad("jump past the end") }
                operation = .jump(k)
            case C.jmp | C.jeq | C.k: operation = try conditional(.equal, x: false)
            case C.jmp | C.jeq | C.x: operation = try conditional(.equal, x: true)
            case C.jmp | C.jgt | C.k: operation = try conditional(.greater, x: false)
            case C.jmp | C.jgt | C.x: operation = try conditional(.greater, x: true)
            case C.jmp | C.jge | C.k: operation = try conditional(.greaterOrEqual, x: false)
            case C.jmp | C.jge | C.x: operation = try conditional(.greaterOrEqual, x: true)
            case C.jmp | C.jset | C.k: operation = try conditional(.anyBitSet, x: false)
            case C.jmp | C.jset | C.x: operation = try conditional(.anyBitSet, x: true)
            default:
                guard instruction.code & 0x07 == C.alu, let arithmetic = arithmetic(instruction.code & 0xf0),
                      instruction.code & ~0xf8 == C.alu else {
                    throw bad("opcode not allowed in a seccomp filter")
                }
                if instruction.code & C.x != 0 {
                    operation = .arithmeticX(arithmetic)
                } else {
                    if arithmetic == .divide && k == 0 { throw bad("division by constant 0") }
                    if (arithmetic == .shiftLeft || arithmetic == .shiftRight) && k >= 32 {
                        throw bad("constant shift of 32 or more")
                    }
                    operation = .arithmeticK(arithmetic, k)
                }
            }
            program.append(operation)
        }
        guard instructions[count - 1].code & 0x07 == C.ret else {
            throw reject("does not end with a return instruction")
        }
        try checkMemoryWrittenBeforeRead(program, reject: reject)
        return program
    }

    /// The ALU operations seccomp allows (BPF_MOD is not among them).
    private static func arithmetic(_ operation: UInt16) -> BPFArithmetic? {
        switch operation {
        case BPFCode.add: return .add
        case BPFCode.sub: return .subtract
        case BPFCode.mul: return .multiply
        case BPFCode.div: return .divide
        case BPFCode.or: return .or
        case BPFCode.and: return .and
        case BPFCode.xor: return .xor
        case BPFCode.lsh: return .shiftLeft
        case BPFCode.rsh: return .shiftRight
        default: return nil
        }
    }

    /// The kernel's check_load_and_stores: a scratch word must be stored on every path reaching a
    /// load of it. Like the kernel, it walks in order and narrows each jump target's written-set;
    /// after a jump the next instruction starts from "all written", narrowed by the jumps to it.
    private static func checkMemoryWrittenBeforeRead(
        _ program: [BPFOperation], reject: (String) -> EngineError
    ) throws {
        var atStart = [UInt16](repeating: 0xffff, count: program.count)
        var written: UInt16 = 0
        for (pc, operation) in program.enumerated() {
            written &= atStart[pc]
            switch operation {
            case let .storeA(index), let .storeX(index):
                written |= 1 << index
            case let .loadMemoryA(index), let .loadMemoryX(index):
                guard written & (1 << index) != 0 else {
                    throw reject("instruction \(pc): scratch memory \(index) may be read before it is written")
                }
            case let .jump(offset):
                atStart[pc + 1 + Int(offset)] &= written
                written = 0xffff
            case let .jumpK(_, _, ifTrue, ifFalse), let .jumpX(_, ifTrue, ifFalse):
                atStart[ifTrue] &= written
                atStart[ifFalse] &= written
                written = 0xffff
            default:
                break
            }
        }
    }
}
