/// Table headers that would crash TOMLKit's parser instead of being refused.
///
/// TOMLKit 0.6 bundles toml++ 3.4.0, whose `parse_table_header` calls `parse_key` on whatever follows
/// `[` or `[[`; `parse_key` asserts that it is a key's first character. SwiftPM never defines
/// `NDEBUG`, so in every build of the agent that assertion aborts the process: a configuration line
/// such as `[.5` or `[[=` killed the agent at start, or the running daemon on SIGHUP, instead of
/// being refused (found by Fuzz/Configuration; fixed upstream in toml++ after 3.4.0). This scan finds
/// such a header first, so it is refused like any other parse error.
extension ConfigurationText {
    /// The 1-based line of the first NUL byte, which TOML text may not hold; nil when there is none.
    static func lineOfNUL(in text: String) -> Int? {
        guard let index = text.utf8.firstIndex(of: 0) else { return nil }
        return text.utf8[..<index].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
    }

    /// The 1-based line of the first table header (`[` or `[[` at the start of a line, outside values
    /// and strings) that is not followed by a key's first character; nil when there is none.
    static func lineOfHeaderWithoutKey(in text: String) -> Int? {
        var scanner = HeaderScanner(Array(text.utf8))
        return scanner.firstHeaderWithoutKey()
    }
}

/// Just enough of TOML's lexical structure to tell a table header from a `[` inside a value: strings
/// (basic, literal, multi-line), comments, and the nesting of arrays and inline tables.
private struct HeaderScanner {
    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    /// Arrays and inline tables open in the current value.
    private var depth = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func firstHeaderWithoutKey() -> Int? {
        var atLineStart = true
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x0A:
                line += 1
                atLineStart = true
                index += 1
                continue
            case 0x20, 0x09, 0x0D:
                index += 1
                continue
            case UInt8(ascii: "#"):
                skipToEndOfLine()
                continue
            case UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"):
                if byte == UInt8(ascii: "["), atLineStart, depth == 0 {
                    if !headerStartsWithKey() { return line }
                    // A quoted key in a header may not span lines: the header ends with its line.
                    skipToEndOfLine()
                    continue
                }
                depth = max(0, depth + (byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") ? 1 : -1))
                index += 1
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                skipString(quote: byte)
            default:
                index += 1
            }
            atLineStart = false
        }
        return nil
    }

    /// At a header's `[`: whether `[` or `[[`, then blanks, is followed by a bare key character or a quote.
    private mutating func headerStartsWithKey() -> Bool {
        var cursor = index + 1
        if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "[") { cursor += 1 }
        while cursor < bytes.count, bytes[cursor] == 0x20 || bytes[cursor] == 0x09 { cursor += 1 }
        guard cursor < bytes.count else { return false }
        let next = bytes[cursor]
        switch next {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""), UInt8(ascii: "'"):
            return true
        default:
            return false
        }
    }

    /// Skips a comment or the rest of a header, up to the newline.
    private mutating func skipToEndOfLine() {
        while index < bytes.count, bytes[index] != 0x0A { index += 1 }
    }

    /// Skips a string opening at `index` (one or three quotes), counting the lines it spans.
    private mutating func skipString(quote: UInt8) {
        let multiLine = index + 2 < bytes.count && bytes[index + 1] == quote && bytes[index + 2] == quote
        index += multiLine ? 3 : 1
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\"), quote == UInt8(ascii: "\"") {
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { line += 1 }
                index += 2
                continue
            }
            if byte == 0x0A {
                // A single-line string ends at the newline (unterminated: toml++ refuses it).
                guard multiLine else { return }
                line += 1
            }
            if byte == quote {
                if !multiLine { index += 1; return }
                if index + 2 < bytes.count, bytes[index + 1] == quote, bytes[index + 2] == quote {
                    index += 3
                    // Up to two more quotes may close a multi-line string ("""a"""" is `a"`).
                    while index < bytes.count, bytes[index] == quote { index += 1 }
                    return
                }
            }
            index += 1
        }
    }
}
