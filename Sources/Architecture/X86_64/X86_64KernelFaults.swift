/// How the x86_64 kernel reports a user fault in its log. The two formats
/// (arch/x86/mm/fault.c `show_signal_msg`, arch/x86/kernel/traps.c `show_signal`):
///
///     COMM[TID]: segfault at ADDR ip IP sp SP error CODE[ in NAME[OFFSET,START+SIZE]][ likely on CPU …]
///     traps: COMM[TID] DESCRIPTION ip:IP sp:SP error:CODE[ in NAME[OFFSET,START+SIZE]]
///
/// (older kernels print `NAME[START+SIZE]`). COMM and NAME are chosen by whoever runs the faulting
/// program, so a line that could be read two ways is refused rather than guessed.
extension X86_64 {
    /// The words that start or anchor the two formats.
    public static let kernelFaultMarkers = ["segfault at ", "traps: "]

    /// The fault a `segfault at` or `traps:` line reports (see the formats above).
    public static func parseKernelFault(_ message: Substring) -> KernelFaultLine? {
        message.hasPrefix("traps: ") ? parseTrap(message.dropFirst("traps: ".count)) : parseSegfault(message)
    }

    /// `COMM[TID]: segfault at ADDR ip IP sp SP error CODE` and the tail.
    private static func parseSegfault(_ message: Substring) -> KernelFaultLine? {
        let anchor = "]: segfault at "
        let occurrences = message.ranges(of: anchor)
        // A second anchor can only come from a name someone chose: refuse to pick one.
        guard occurrences.count == 1, let anchorRange = occurrences.first,
              let (command, tid) = commandAndThread(message[..<anchorRange.lowerBound]) else { return nil }
        var scanner = FieldScanner(message[anchorRange.upperBound...])
        guard scanner.hex() != nil, scanner.literal(" ip "), let ip = scanner.hex(), scanner.literal(" sp "),
              scanner.hex() != nil, scanner.literal(" error "), scanner.hex() != nil,
              let tail = parseTail(scanner.rest, cpuSuffixAllowed: true) else { return nil }
        return KernelFaultLine(command: command, thread: tid, kind: "segfault", instructionPointer: ip, mapping: tail.mapping)
    }

    /// `COMM[TID] DESCRIPTION ip:IP sp:SP error:CODE` and the tail (after `traps: `).
    private static func parseTrap(_ message: Substring) -> KernelFaultLine? {
        guard let ipRange = message.firstRange(of: " ip:") else { return nil }
        let head = message[..<ipRange.lowerBound]
        // The thread is the one `[digits] ` in the head; two mean a crafted name.
        let candidates = head.indices.filter { head[$0] == "[" && threadNumber(at: $0, in: head) != nil }
        guard candidates.count == 1, let open = candidates.first,
              let (tid, afterThread) = threadNumber(at: open, in: head) else { return nil }
        let kind = head[afterThread...]
        guard kind.hasPrefix("trap ") || kind.hasPrefix("general protection") else { return nil }
        var scanner = FieldScanner(message[ipRange.upperBound...])
        guard let ip = scanner.hex(), scanner.literal(" sp:"), scanner.hex() != nil, scanner.literal(" error:"),
              scanner.hex() != nil, let tail = parseTail(scanner.rest, cpuSuffixAllowed: false) else { return nil }
        return KernelFaultLine(command: String(head[..<open]), thread: tid, kind: String(kind), instructionPointer: ip,
                               mapping: tail.mapping)
    }

    /// `COMM[TID` followed by `]`: splits `text` (which ends just before that `]`) into name and id.
    private static func commandAndThread(_ text: Substring) -> (String, Int32)? {
        guard let open = text.lastIndex(of: "["),
              let tid = Int32(text[text.index(after: open)...]), tid > 0 else { return nil }
        return (String(text[..<open]), tid)
    }

    /// At `open` (a `[`) in `head`: `[DIGITS] ` → the number and the index after the space.
    private static func threadNumber(at open: Substring.Index, in head: Substring) -> (Int32, Substring.Index)? {
        let digits = head[head.index(after: open)...].prefix(while: \.isASCIIDigit)
        guard !digits.isEmpty, let tid = Int32(digits), tid > 0 else { return nil }
        let rest = head[digits.endIndex...]
        guard rest.hasPrefix("] ") else { return nil }
        return (tid, rest.index(rest.startIndex, offsetBy: 2))
    }

    /// What follows the registers in a well-formed line.
    private enum Tail {
        case bare
        case mapping(KernelFaultLine.Mapping)

        var mapping: KernelFaultLine.Mapping? {
            if case let .mapping(mapping) = self { mapping } else { nil }
        }
    }

    /// What may follow the registers: nothing, ` in NAME[…]`, and for segfaults ` likely on CPU …`.
    /// Returns nil for anything else (the line is not one the kernel printed, or was cut).
    private static func parseTail(_ tail: Substring, cpuSuffixAllowed: Bool) -> Tail? {
        var tail = tail
        if cpuSuffixAllowed, let cpu = tail.ranges(of: " likely on CPU ").last {
            guard isCPUSuffix(tail[cpu.upperBound...]) else { return nil }
            tail = tail[..<cpu.lowerBound]
        }
        if tail.isEmpty { return .bare }
        guard tail.hasPrefix(" in "), tail.hasSuffix("]"), let open = tail.lastIndex(of: "[") else { return nil }
        let name = tail[tail.index(tail.startIndex, offsetBy: 4)..<open]
        let inside = tail[tail.index(after: open)..<tail.index(before: tail.endIndex)]
        // "OFFSET,START+SIZE" (6.1 and later) or "START+SIZE".
        let fields = inside.split(separator: ",", omittingEmptySubsequences: false)
        guard !name.isEmpty, fields.count <= 2, let placement = fields.last,
              fields.count == 1 || UInt64(fields[0], radix: 16) != nil else { return nil }
        let parts = placement.split(separator: "+", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = UInt64(parts[0], radix: 16), let size = UInt64(parts[1], radix: 16) else {
            return nil
        }
        return .mapping(KernelFaultLine.Mapping(name: String(name), start: start, size: size))
    }

    /// `N (core N, socket N)`.
    private static func isCPUSuffix(_ text: Substring) -> Bool {
        var scanner = FieldScanner(text)
        return scanner.decimal() && scanner.literal(" (core ") && scanner.decimal() && scanner.literal(", socket ")
            && scanner.decimal() && scanner.literal(")") && scanner.rest.isEmpty
    }
}

/// Reads fixed fields off the front of a substring.
private struct FieldScanner {
    var rest: Substring

    init(_ text: Substring) { rest = text }

    /// Consumes `text` if the rest starts with it.
    mutating func literal(_ text: String) -> Bool {
        guard rest.hasPrefix(text) else { return false }
        rest = rest.dropFirst(text.count)
        return true
    }

    /// Consumes lowercase hex digits (1 to 16).
    mutating func hex() -> UInt64? {
        let digits = rest.prefix(while: { $0.isHexDigit && !$0.isUppercase })
        guard !digits.isEmpty, digits.count <= 16, let value = UInt64(digits, radix: 16) else { return nil }
        rest = rest[digits.endIndex...]
        return value
    }

    /// Consumes decimal digits.
    mutating func decimal() -> Bool {
        let digits = rest.prefix(while: \.isASCIIDigit)
        guard !digits.isEmpty else { return false }
        rest = rest[digits.endIndex...]
        return true
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

