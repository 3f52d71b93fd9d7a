/// The x86-64 code of an `InjectionProgram` (`Architecture.injectionProgram`). Each call loads
/// its number into rax and all six argument registers (rdi, rsi, rdx, r10, r8, r9; zero where the
/// call has fewer arguments, as the seccomp gate evaluated it), runs `syscall`, stores rax in its
/// slot and checks it (`test rax, rax; js` for a descriptor, `cmp rax, rcx; jne` for a value),
/// jumping to the cleanups on a mismatch. A cleanup runs only when its descriptor register is not
/// negative. The ending loads its call and jumps to the stub's `syscall`. The result slots are on
/// the stack, at `[rsp + 8 × i]` (the program's own page is not writable: W^X), filled with
/// `notRun` first; the code is position-independent.
public enum InjectionProgramCode {
    /// The x86-64 register numbers of the system call arguments, in ABI order: rdi, rsi, rdx, r10, r8, r9.
    private static let argumentRegisters: [UInt8] = [7, 6, 2, 10, 8, 9]
    private static let rax: UInt8 = 0, rcx: UInt8 = 1

    /// The program's code, to be written `stubDistance` bytes before the stub's `syscall`.
    public static func encode(_ program: InjectionProgram, stubDistance: Int) -> EncodedInjectionProgram {
        // Appended in place, with room for a typical program: one is encoded for every process
        // a first apply loads into.
        var code = Encoder(capacity: 1024)
        var cleanupJumps: [Int] = []                     // rel32 fields of the jumps to the cleanups
        cleanupJumps.reserveCapacity(program.calls.count)

        let count = program.calls.count + program.cleanups.count
        if count > 0 { code.moveImmediate(rax, UInt64(bitPattern: EncodedInjectionProgram.notRun)) }
        for slot in 0..<count { code.store(slot: slot) }
        for (index, call) in program.calls.enumerated() {
            code.setUp(call.number, call.arguments)
            code.buffer.append(X86_64.systemCallInstruction)           // syscall
            code.store(slot: index)                                     // mov [rsp+slot], rax
            switch call.expectation {
            case .descriptor:
                code.buffer.append(0x48, 0x85, 0xC0)                    // test rax, rax
                code.buffer.append(0x0F, 0x88)                          // js cleanups
            case let .value(expected):
                code.moveImmediate(rcx, expected)
                code.buffer.append(0x48, 0x39, 0xC8)                    // cmp rax, rcx
                code.buffer.append(0x0F, 0x85)                          // jne cleanups
            }
            cleanupJumps.append(code.buffer.appendField())
        }
        let cleanupsStart = code.buffer.count
        for field in cleanupJumps { code.buffer.setDisplacement(at: field, toReach: cleanupsStart) }
        for (index, cleanup) in program.cleanups.enumerated() {
            code.setUp(cleanup.number, cleanup.arguments)
            let guardRegister = argumentRegisters[cleanup.guardArgument]
            let both: UInt8 = guardRegister >= 8 ? 5 : 0                // REX.R and REX.B
            code.buffer.append(0x48 | both, 0x85, 0xC0 | ((guardRegister & 7) << 3) | (guardRegister & 7))    // test reg, reg
            code.buffer.append(0x0F, 0x88)                              // js past the call
            let skip = code.buffer.appendField()
            code.buffer.append(X86_64.systemCallInstruction)           // syscall
            code.store(slot: program.calls.count + index)              // mov [rsp+slot], rax
            code.buffer.setDisplacement(at: skip, toReach: code.buffer.count)
        }
        code.setUp(program.ending.number, program.ending.arguments.map { .value($0) })
        code.buffer.append(0xE9)                                        // jmp stub
        code.buffer.append(littleEndian: Int32(stubDistance - (code.buffer.count + 4)))
        return EncodedInjectionProgram(bytes: code.buffer.bytes, resultCount: count)
    }

    /// The instructions a program is made of, appended to its code.
    private struct Encoder {
        var buffer: MachineCode

        init(capacity: Int) { buffer = MachineCode(capacity: capacity) }

        /// mov [rsp+8*slot], rax: REX.W, 89, ModRM disp32 + SIB rsp.
        mutating func store(slot: Int) {
            buffer.append(0x48, 0x89, 0x84, 0x24)
            buffer.append(littleEndian: Int32(slot * 8))
        }

        /// mov reg, [rsp+8*slot]: REX.W (+R), 8B, ModRM disp32 + SIB rsp.
        mutating func load(_ register: UInt8, slot: Int) {
            buffer.append(0x48 | (register >= 8 ? 4 : 0), 0x8B, 0x84 | ((register & 7) << 3), 0x24)
            buffer.append(littleEndian: Int32(slot * 8))
        }

        /// The shortest move of `value` into `register`.
        mutating func moveImmediate(_ register: UInt8, _ value: UInt64) {
            let extended: UInt8 = register >= 8 ? 1 : 0   // REX.B
            if value <= UInt64(UInt32.max) {
                // mov r32, imm32 (zero-extends to 64 bits)
                if extended != 0 { buffer.append(0x41) }
                buffer.append(0xB8 + (register & 7))
                buffer.append(littleEndian: UInt32(value))
            } else if let small = Int32(exactly: Int64(bitPattern: value)) {
                // mov r/m64, imm32 (sign-extends): AT_FDCWD, -1
                buffer.append(0x48 | extended, 0xC7, 0xC0 | (register & 7))
                buffer.append(littleEndian: small)
            } else {
                // mov r64, imm64
                buffer.append(0x48 | extended, 0xB8 + (register & 7))
                buffer.append(littleEndian: value)
            }
        }

        /// An argument into `register`: its value, or an earlier call's result from its slot.
        mutating func load(_ register: UInt8, _ argument: InjectionProgram.Argument) {
            switch argument {
            case let .value(value): moveImmediate(register, value)
            case let .resultOf(index): load(register, slot: index)
            }
        }

        /// The call's number in rax and all six argument registers (zero past its arguments).
        mutating func setUp(_ number: Int, _ arguments: [InjectionProgram.Argument]) {
            moveImmediate(InjectionProgramCode.rax, UInt64(number))
            for (index, register) in InjectionProgramCode.argumentRegisters.enumerated() {
                load(register, index < arguments.count ? arguments[index] : .value(0))
            }
        }
    }
}

extension X86_64 {
    /// See `InjectionProgramCode`.
    public static func injectionProgram(_ program: InjectionProgram, stubDistance: Int) -> EncodedInjectionProgram {
        InjectionProgramCode.encode(program, stubDistance: stubDistance)
    }

    /// See `Architecture.injectionProgram(_:stubDistance:)`: the ending's `jmp rel32` is the last
    /// five bytes, its displacement counted from the end of the code.
    public static func injectionProgram(_ encoded: EncodedInjectionProgram, stubDistance: Int) -> EncodedInjectionProgram {
        var code = MachineCode(encoded.bytes)
        code.setDisplacement(at: code.count - 4, toReach: stubDistance)
        return EncodedInjectionProgram(bytes: code.bytes, resultCount: encoded.resultCount)
    }
}
