import Architecture

/// What a function's entry holds in one process, read from its memory.
enum EntryState: Equatable {
    /// The original bytes the hotpatch was built for.
    case original
    /// Our jump, to `target`, `jumpLength` bytes long; the bytes after it are original.
    case redirected(target: UInt64, jumpLength: Int)
    /// Something else: a breakpoint, another tool's patch, a different build.
    case foreign
}

/// One write to a function's entry, decided before the stop window.
struct EntryWrite: Equatable {
    /// The function's entry address.
    let address: UInt64
    /// The bytes found there when planning; checked again once every thread is stopped.
    let expected: [UInt8]
    /// The bytes to write (a jump plus original bytes that a longer earlier jump had covered).
    let bytes: [UInt8]
    /// Bytes at the start of the write that are padding before the function's entry, which no
    /// thread runs: the near jump of an entry hop.
    var padding: Int = 0
    /// No thread's instruction pointer may be in here while we write; at its first byte a thread
    /// runs the new bytes whole, so that one is safe.
    var window: Range<UInt64> { (address + UInt64(padding))..<(address + UInt64(bytes.count)) }
}

/// The bytes of several entries close together (or of a patch image's relocations in one page),
/// as one read found them from `low`.
struct EntrySpan: Equatable {
    /// The address of the first byte.
    let low: UInt64
    /// The bytes from `low` on.
    let bytes: [UInt8]

    /// The `count` bytes at `address` (an entry, a function), nil when the span does not hold them.
    func bytes(at address: UInt64, count: Int) -> [UInt8]? {
        guard address >= low, address - low + UInt64(count) <= UInt64(bytes.count) else { return nil }
        let offset = Int(address - low)
        return Array(bytes[offset..<(offset + count)])
    }

    /// The span with every write applied, in order: one write for all of them. nil when a page of
    /// the span holds none of the writes, since writing a text page makes the process a copy of
    /// it of its own (memory the page cache no longer shares), and a page between two entries
    /// would be copied for nothing.
    func written(with writes: [EntryWrite]) -> [UInt8]? {
        written(withRuns: writes.map { (address: $0.address, bytes: $0.bytes) })
    }

    /// `written(with:)` for any bytes to write at any addresses (a patch image's relocations).
    func written(withRuns runs: [(address: UInt64, bytes: [UInt8])]) -> [UInt8]? {
        let pageSize = PatchImageMarker.pageSize
        guard !bytes.isEmpty else { return nil }
        let firstPage = low / pageSize
        let lastPage = (low + UInt64(bytes.count) - 1) / pageSize
        for page in firstPage...lastPage where !runs.contains(where: { run in
            let end = run.address + UInt64(max(run.bytes.count, 1)) - 1
            return run.address / pageSize <= page && page <= end / pageSize
        }) {
            return nil
        }
        var merged = bytes
        for run in runs {
            guard run.address >= low, run.address - low + UInt64(run.bytes.count) <= UInt64(merged.count) else { return nil }
            let offset = Int(run.address - low)
            merged.replaceSubrange(offset..<(offset + run.bytes.count), with: run.bytes)
        }
        return merged
    }
}

/// Pure decisions about function entries: what is there, and what to write.
///
/// The bytes are a function's region, from `address`: `padding` bytes before its entry (0, or the
/// near jump's length for a function too short for that jump), then the function. With padding, the
/// redirect is a near jump in the padding and an entry hop (a 2-byte jump) at the entry reaching it,
/// the classic hotpatch layout; without, a jump at the entry.
enum EntryPlan {
    /// Classifies `memory` (the region's current bytes) against its verified `original` bytes.
    /// `isOurs` tells whether an address lies in a patch image of ours.
    static func classify(memory: [UInt8], original: [UInt8], address: UInt64, padding: Int = 0,
                         isOurs: (UInt64) -> Bool) -> EntryState {
        if memory == original { return .original }
        guard memory.count == original.count else { return .foreign }
        if padding > 0 {
            let hopLength = HostArchitecture.entryHopLength
            let covered = padding + hopLength
            guard memory.count >= covered, padding == HostArchitecture.nearJumpLength,
                  let hop = HostArchitecture.entryHop(from: address + UInt64(padding), to: address),
                  Array(memory[padding..<covered]) == hop,
                  let (target, length) = HostArchitecture.decodeJump(memory, at: address), length == padding,
                  isOurs(target), memory[covered...] == original[covered...] else { return .foreign }
            return .redirected(target: target, jumpLength: covered)
        }
        if let (target, length) = HostArchitecture.decodeJump(memory, at: address), isOurs(target),
           memory.count >= length, memory[length...] == original[length...] {
            return .redirected(target: target, jumpLength: length)
        }
        return .foreign
    }

    /// The write that moves an entry from `state` to a jump to `target` (or back to the original
    /// when `target` is nil); nil when it is already there. A `nearOnly` function never gets the
    /// far jump: code branches into the bytes only that jump would cover.
    static func write(from state: EntryState, memory: [UInt8], original: [UInt8], address: UInt64, padding: Int = 0,
                      nearOnly: Bool = false, target: UInt64?, symbol: String) throws(UnpatchableReason) -> EntryWrite? {
        let coveredLength: Int
        switch state {
        case .foreign:
            throw .entryBytesDiffer(symbol: symbol, address: address)
        case .original:
            coveredLength = 0
        case let .redirected(current, length):
            if let target, current == target { return nil }
            coveredLength = length
        }
        guard let target else {
            if coveredLength == 0 { return nil }
            return EntryWrite(address: address, expected: Array(memory[0..<coveredLength]),
                              bytes: Array(original[0..<coveredLength]), padding: padding)
        }
        if padding > 0 {
            // Only the near jump fits in the padding: the image must be within its reach.
            guard padding == HostArchitecture.nearJumpLength, memory.count >= padding + HostArchitecture.entryHopLength,
                  let near = HostArchitecture.nearJump(from: address, to: target),
                  let hop = HostArchitecture.entryHop(from: address + UInt64(padding), to: address) else {
                throw .functionTooShort(symbol: symbol, size: UInt64(original.count - padding), needed: HostArchitecture.nearJumpLength)
            }
            return EntryWrite(address: address, expected: Array(memory[0..<(padding + hop.count)]), bytes: near + hop,
                              padding: padding)
        }
        if nearOnly, HostArchitecture.nearJump(from: address, to: target) == nil {
            throw .noRoomForNearJump(symbol: symbol, address: address, need: .branchTargetUnderFarJump)
        }
        guard let jump = HostArchitecture.bestJump(from: address, to: target, room: UInt64(original.count)) else {
            let needed = HostArchitecture.nearJump(from: address, to: target) == nil
                ? HostArchitecture.farJumpLength : HostArchitecture.nearJumpLength
            throw .functionTooShort(symbol: symbol, size: UInt64(original.count), needed: needed)
        }
        // A shorter jump replacing a longer one puts back the original bytes the longer one hid.
        let length = max(jump.count, coveredLength)
        let bytes = jump + original[jump.count..<length]
        return EntryWrite(address: address, expected: Array(memory[0..<length]), bytes: Array(bytes))
    }
}
