import Architecture
import Artifact

/// The entry check of `hotpatch-pack`: the bytes the agent's jump overwrites at a function's entry
/// must hold no place that code jumps to, and must not run past the function into other code.
/// Overwriting part of an instruction is fine (nothing executes the old bytes once the jump is
/// there); what is not fine is a thread arriving in the middle of the jump.
enum EntrySafety {
    /// The 2-byte short jump a function shorter than the near jump gets at its entry (its long jump
    /// sits in the padding before the entry).
    static let shortJumpLength = 2

    /// How many bytes the agent's jump overwrites at the entry of a function of `size` bytes.
    static func overwrittenLength(size: UInt64) -> Int {
        size >= UInt64(HostArchitecture.nearJumpLength) ? HostArchitecture.nearJumpLength : shortJumpLength
    }

    /// Code that belongs to a replaced function and may branch into its entry: its body, and the
    /// cold part GCC split out of it (`NAME.cold`), which jumps back into the body.
    struct Code {
        /// Its symbol name.
        var name: String
        /// Its link-time address.
        var address: UInt64
        /// Its bytes.
        var bytes: [UInt8]
    }

    /// The direct branches among `instructions` whose target lies inside `entry+1 ..< entry+length`:
    /// a thread taking one would execute the middle of the jump. A branch to `entry` itself is
    /// fine: it runs the whole jump, and at offset 0 nothing of the old function has run yet, so
    /// arriving there is a fresh call of the new function with the state the old code itself
    /// treated as a fresh call (GCC's loop to the entry is a self tail call). A branch that itself
    /// starts inside the jump is fine too: the jump overwrites it, so it never runs again (the
    /// agent writes only while no thread is inside those bytes).
    static func branchesIntoJump(at entry: UInt64, length: Int, among instructions: [DecodedInstruction]) -> [DecodedInstruction] {
        func inside(_ address: UInt64) -> Bool { address >= entry && address - entry < UInt64(length) }
        return instructions.filter { instruction in
            guard let target = instruction.branchTarget, target != entry, inside(target) else { return false }
            return !inside(instruction.address)
        }
    }

    /// The calls that start inside `entry ..< entry+length` and end strictly inside it: while a
    /// thread is in the called function, its return address points into the middle of the jump
    /// (the jump overwrites the call, but the thread comes back after it). A call ending exactly
    /// at `entry+length` returns past the jump, which is fine.
    static func callsReturningIntoJump(at entry: UInt64, length: Int, among instructions: [DecodedInstruction]) -> [DecodedInstruction] {
        instructions.filter { instruction in
            let end = instruction.address + UInt64(instruction.length)
            return instruction.mnemonic == "call" && instruction.address >= entry && end - entry < UInt64(length)
        }
    }

    /// What the check found in a redirection it lets through.
    struct Findings {
        /// Lines for the publisher.
        var warnings: [String] = []
        /// Code branches into the bytes only the far jump overwrites, so the redirection must be
        /// published as near-only (`FunctionRedirection.nearOnly`).
        var nearOnly = false
    }

    /// Checks one redirection: `function` is its code in the target, `coldParts` any cold part,
    /// `symbols` every symbol known for the target (another one starting inside the jump means the
    /// jump runs into other code). Returns what it found; throws the refusal.
    static func check(_ redirection: FunctionRedirection, function: Code, coldParts: [Code], symbols: [ELFSymbol],
                      targetPath: String, disassembler: Disassembler) throws(PackError) -> Findings {
        let name = redirection.symbol
        let entry = redirection.offset
        let length = overwrittenLength(size: redirection.size)
        func at(_ address: UInt64, in code: Code) -> String { "\(code.name)+\(hex(address - code.address))" }
        func refuse(_ why: String) -> PackError {
            PackError("Refusing to redirect \(name) in \(targetPath): the \(length)-byte jump written at its entry (\(hex(entry))) \(why)")
        }

        guard UInt64(length) <= redirection.size else {
            throw refuse("would run past its end: the function is \(redirection.size) bytes")
        }
        let intruders = symbols.filter { symbol in
            symbol.isDefined && !symbol.name.isEmpty && symbol.value > entry && symbol.value - entry < UInt64(length)
                && [.function, .gnuIndirectFunction, .none].contains(symbol.kind)
        }
        if let intruder = intruders.min(by: { $0.value < $1.value }) {
            throw refuse("would run past its code into \(intruder.name), which starts at \(name)+\(hex(intruder.value - entry)): "
                         + "calls to \(intruder.name) would land inside the jump")
        }

        var findings = Findings()
        let farLength = HostArchitecture.farJumpLength
        for code in [function] + coldParts {
            let instructions = disassembler.decode(code.bytes, at: code.address)
            let decoded = instructions.reduce(0) { $0 + $1.length }
            if decoded < code.bytes.count {
                findings.warnings.append("\(code.name): Capstone decodes only its first \(decoded) of \(code.bytes.count) bytes as x86-64 "
                                + "instructions; branches from the rest into the entry of \(name) were not checked")
            }
            if let branch = branchesIntoJump(at: entry, length: length, among: instructions).first,
               let target = branch.branchTarget {
                throw refuse("would overwrite a branch target: \(branch.mnemonic) at \(at(branch.address, in: code)) jumps to "
                             + "\(name)+\(hex(target - entry)), inside the jump, and a thread taking it would execute the "
                             + "jump's middle bytes; patch \(name)'s callers instead, or move the loop head past the first \(length) bytes")
            }
            if let call = callsReturningIntoJump(at: entry, length: length, among: instructions).first {
                throw refuse("would hold a return address: \(call.mnemonic) at \(at(call.address, in: code)) returns to "
                             + "\(name)+\(hex(call.address + UInt64(call.length) - entry)), inside the jump, and a thread still in the "
                             + "called function when the jump is written would return into its middle bytes; patch \(name)'s callers instead")
            }
            if redirection.size >= UInt64(farLength),
               let call = callsReturningIntoJump(at: entry, length: farLength, among: instructions).first {
                findings.nearOnly = true
                findings.warnings.append("\(name): \(call.mnemonic) at \(at(call.address, in: code)) returns to "
                                         + "\(name)+\(hex(call.address + UInt64(call.length) - entry)), inside the \(farLength)-byte "
                                         + "absolute jump but past the \(length)-byte one: the release marks \(name) near_only, so the "
                                         + "agent will use only the \(length)-byte jump for it, and refuses a process in which it finds "
                                         + "no free range within \(HostArchitecture.nearJumpReachText) of the target for the patch object "
                                         + "(rare) rather than let a thread return into the jump's middle")
            }
            if redirection.size >= UInt64(farLength),
               let branch = branchesIntoJump(at: entry, length: farLength, among: instructions).first,
               let target = branch.branchTarget {
                findings.nearOnly = true
                findings.warnings.append("\(name): \(branch.mnemonic) at \(at(branch.address, in: code)) jumps to \(name)+\(hex(target - entry)), "
                                         + "inside the \(farLength)-byte absolute jump but past the \(length)-byte one: the release marks "
                                         + "\(name) near_only, so the agent will use only the \(length)-byte jump for it, and refuses a process "
                                         + "in which it finds no free range within \(HostArchitecture.nearJumpReachText) of the target for "
                                         + "the patch object (rare) rather than break this loop")
            }
        }
        return findings
    }
}

/// `0x…`, as the ELF messages write offsets.
func hex<Value: BinaryInteger>(_ value: Value) -> String { "0x" + String(value, radix: 16) }
