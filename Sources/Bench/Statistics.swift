/// Order statistics over microsecond samples (nearest rank).
struct Distribution: Codable {
    var count: Int
    var median: UInt64
    var p99: UInt64
    var max: UInt64
    var min: UInt64
    var mean: Double

    init(_ samples: [UInt64]) {
        let sorted = samples.sorted()
        count = sorted.count
        func rank(_ fraction: Double) -> UInt64 {
            guard !sorted.isEmpty else { return 0 }
            let index = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
        }
        median = rank(0.5)
        p99 = rank(0.99)
        max = sorted.last ?? 0
        min = sorted.first ?? 0
        mean = sorted.isEmpty ? 0 : Double(sorted.reduce(0, +)) / Double(sorted.count)
    }
}

/// Microseconds as a short text: "87 µs", "1.9 ms", "2.41 s".
func formatMicroseconds(_ value: UInt64) -> String {
    if value < 10_000 { return "\(value) µs" }
    if value < 10_000_000 { return String(format1: Double(value) / 1000, digits: 1) + " ms" }
    return String(format1: Double(value) / 1_000_000, digits: 2) + " s"
}

/// A difference of microseconds with its sign: "+120 µs", "-3 µs".
func formatSignedMicroseconds(_ value: Int64) -> String {
    (value < 0 ? "-" : "+") + formatMicroseconds(value.magnitude)
}

extension String {
    /// A fixed-point rendering without Foundation's locale machinery.
    init(format1 value: Double, digits: Int) {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value * scale).rounded()
        let whole = Int(scaled / scale)
        let fraction = Int(scaled) - whole * Int(scale)
        if digits == 0 { self = "\(whole)"; return }
        var text = "\(abs(fraction))"
        while text.count < digits { text = "0" + text }
        self = "\(whole).\(text)"
    }
}

/// A plain text table with right-aligned columns after the first.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = Swift.max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                return index == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        out += rows.map(line)
        return out.joined(separator: "\n")
    }
}
