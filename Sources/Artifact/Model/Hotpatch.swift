import Architecture

/// A GNU build-id: the bytes of an ELF object's NT_GNU_BUILD_ID note, shown as lowercase hex.
public struct BuildID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The raw note bytes.
    public let bytes: [UInt8]

    /// Wraps raw note bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Parses lowercase or uppercase hex; nil when the text is empty, odd-length or not hex.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), !bytes.isEmpty else { return nil }
        self.bytes = bytes
    }

    /// Lowercase hex, as `file(1)` and `readelf -n` print it.
    public var description: String { Hex.encode(bytes) }

    public static func < (lhs: BuildID, rhs: BuildID) -> Bool { lhs.description < rhs.description }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = BuildID(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "build-id '\(text)' is not hex"))
        }
        self = value
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// One function of the target to redirect to its fixed version in the patch object.
public struct FunctionRedirection: Hashable, Sendable, Codable {
    /// The function's name in the target (informational: offsets, not names, locate it).
    public var symbol: String
    /// The function's entry, as an offset from the target object's load base.
    public var offset: UInt64
    /// The function's size in bytes; the jump written at its entry must fit in it.
    public var size: UInt64
    /// SHA-256 of the function's original `size` bytes, lowercase hex.
    public var sha256: String
    /// The exported symbol in the patch object that replaces the function.
    public var replacement: String
    /// Bytes of padding just before the entry that the redirect also uses: 0, or, for a function
    /// shorter than the near jump, the near jump's length (the near jump goes in the padding and a
    /// 2-byte hop at the entry reaches it). When non-zero, `sha256` covers the padding and the
    /// function, `padding + size` bytes from `offset - padding`.
    public var padding: UInt64
    /// Only the near jump may be written at the entry, never the longer far jump: code of the
    /// function branches into the bytes only the far jump would overwrite (`hotpatch-pack` found
    /// it with the disassembler), so a thread taking that branch would run the far jump's middle.
    public var nearOnly: Bool

    /// Describes one redirection.
    public init(symbol: String, offset: UInt64, size: UInt64, sha256: String, replacement: String, padding: UInt64 = 0,
                nearOnly: Bool = false) {
        self.symbol = symbol
        self.offset = offset
        self.size = size
        self.sha256 = sha256
        self.replacement = replacement
        self.padding = padding
        self.nearOnly = nearOnly
    }

    /// Where the bytes the redirect checks and writes begin: the padding it uses, else the entry.
    public var regionOffset: UInt64 { offset - padding }
    /// How many bytes the redirect checks: the padding it uses and the whole function.
    public var regionSize: UInt64 { padding + size }

    /// Why only the near jump can redirect this function, or nil when the far jump may too.
    public var nearJumpNeed: NearJumpNeed? {
        if padding > 0 { return .entryHop }
        if nearOnly { return .branchTargetUnderFarJump }
        if size < UInt64(HostArchitecture.farJumpLength) { return .shorterThanFarJump }
        return nil
    }

    private enum CodingKeys: String, CodingKey {
        case symbol, offset, size, sha256, replacement, padding
        case nearOnly = "near_only"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(symbol: try container.decode(String.self, forKey: .symbol),
                  offset: try container.decode(UInt64.self, forKey: .offset),
                  size: try container.decode(UInt64.self, forKey: .size),
                  sha256: try container.decode(String.self, forKey: .sha256),
                  replacement: try container.decode(String.self, forKey: .replacement),
                  padding: try container.decodeIfPresent(UInt64.self, forKey: .padding) ?? 0,
                  nearOnly: try container.decodeIfPresent(Bool.self, forKey: .nearOnly) ?? false)
    }

    /// Writes `near_only` only when set, so a redirection without it reads as before the flag existed.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(symbol, forKey: .symbol)
        try container.encode(offset, forKey: .offset)
        try container.encode(size, forKey: .size)
        try container.encode(sha256, forKey: .sha256)
        try container.encode(replacement, forKey: .replacement)
        try container.encode(padding, forKey: .padding)
        if nearOnly { try container.encode(true, forKey: .nearOnly) }
    }
}

/// Why a function can be redirected only with the near jump (`jmp rel32` on x86-64), so the patch
/// image must lie within its reach of the target.
public enum NearJumpNeed: Hashable, Sendable {
    /// The redirect uses the padding before the entry, which holds only the near jump.
    case entryHop
    /// Code of the function branches into the bytes only the far jump would overwrite (`near_only`).
    case branchTargetUnderFarJump
    /// The function is shorter than the far jump.
    case shorterThanFarJump
}

/// A non-exported symbol of the target that the patch object needs, located by offset.
public struct TargetSymbolReference: Hashable, Sendable, Codable {
    /// What a reference's offset locates.
    public enum Kind: String, Hashable, Sendable, Codable {
        /// An address: the offset is from the target object's load base (functions, static data).
        case address
        /// A thread-local (`__thread`) variable: the offset is into the object's TLS block.
        case threadLocal = "tls"
    }

    /// The name the patch object uses for it (an undefined symbol in the patch object).
    public var symbol: String
    /// Its address as an offset from the target object's load base, or for a thread-local its
    /// offset in the object's TLS block.
    public var offset: UInt64
    /// What `offset` locates; channel JSON leaves it out for an address.
    public var kind: Kind

    /// Describes one reference.
    public init(symbol: String, offset: UInt64, kind: Kind = .address) {
        self.symbol = symbol
        self.offset = offset
        self.kind = kind
    }
}

/// What one hotpatch does to one ELF object (an executable or shared library), found by build-id.
public struct HotpatchTarget: Hashable, Sendable {
    /// The build-id of the object to patch.
    public var buildID: BuildID
    /// Where the object usually lives (for messages; processes are matched by build-id).
    public var pathHint: String
    /// The local path of the patch object (a `cc -shared -fPIC` build) to load into each process.
    /// Its file name identifies it in `/proc/PID/maps`, so it must be unique per content.
    public var patchObjectPath: String
    /// The functions to redirect.
    public var redirections: [FunctionRedirection]
    /// Non-exported target symbols the patch object needs.
    public var references: [TargetSymbolReference]

    /// Describes one target.
    public init(buildID: BuildID, pathHint: String, patchObjectPath: String,
                redirections: [FunctionRedirection], references: [TargetSymbolReference] = []) {
        self.buildID = buildID
        self.pathHint = pathHint
        self.patchObjectPath = patchObjectPath
        self.redirections = redirections
        self.references = references
    }
}

/// A cumulative hotpatch: level N of a baseline fixes everything levels 1..N-1 fixed.
public struct Hotpatch: Hashable, Sendable {
    /// The release id, unique in the channel.
    public var id: String
    /// The baseline this hotpatch applies to.
    public var baseline: String
    /// Its cumulative level within the baseline (1, 2, …).
    public var level: Int
    /// The objects it patches.
    public var targets: [HotpatchTarget]

    /// Describes one hotpatch.
    public init(id: String, baseline: String, level: Int, targets: [HotpatchTarget]) {
        self.id = id
        self.baseline = baseline
        self.level = level
        self.targets = targets
    }
}

/// Hex encoding helpers shared by build-ids and digests.
public enum Hex {
    /// Lowercase hex of `bytes`.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        // Written in place: the patcher hashes every entry it reads, for every process.
        let bytes = Array(bytes)
        func digit(_ value: UInt8) -> UInt8 { value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10 }
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (index, byte) in bytes.enumerated() {
                out[2 * index] = digit(byte >> 4)
                out[2 * index + 1] = digit(byte & 0xf)
            }
            return bytes.count * 2
        }
    }

    /// The bytes of a hex string, or nil if it is odd-length or has a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = value(chars[index]), let low = value(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func value(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return char - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
