/// One mapping of /proc/PID/smaps: the mapping, and how much of it is resident and how.
public struct ResidentMapping: Sendable, Hashable {
    /// The mapping (its header line, as /proc/PID/maps shows it).
    public var mapping: MemoryMapping
    /// `Rss:` in KiB: its pages the process has mapped now.
    public var residentKiB: UInt64
    /// `Private_Dirty:` in KiB: pages only this process holds, changed since they were read.
    public var privateDirtyKiB: UInt64
    /// `Anonymous:` in KiB: pages that are no longer the file's (copied on a write, e.g. relocated).
    public var anonymousKiB: UInt64

    /// Every resident page is the backing file's own, unchanged: dropping the mapping's pages loses
    /// nothing, since a later access reads them again from the file (the page cache). A page of a
    /// private mapping changed in the process is anonymous (copied on the write); `Private_Dirty:`
    /// also counts the file's own pages not yet written back to disk (a binary installed or built
    /// moments ago), which the page cache keeps, so it says nothing here.
    public var holdsOnlyFilePages: Bool {
        mapping.isFileBacked && !mapping.isShared && !mapping.isWritable && !mapping.isDeleted && anonymousKiB == 0
    }
}

/// Parses /proc/PID/smaps: header lines as in /proc/PID/maps, each followed by `Name: value kB`
/// lines (fs/proc/task_mmu.c, show_smap). Only the fields `ResidentMapping` carries are read; a
/// block whose `Rss:`, `Private_Dirty:` or `Anonymous:` is missing is an error, since the
/// caller decides from them what it may drop.
public enum ProcSmapsParser {
    /// Parses every block of `bytes`; `path` names the file in errors. Throws `malformedProcFile`.
    public static func parse(_ bytes: [UInt8], path: String) throws -> [ResidentMapping] {
        var headers: [UInt8] = []
        var fields: [(rss: UInt64?, dirty: UInt64?, anonymous: UInt64?)] = []
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let first = bytes[lineStart]
            // A header starts with its start address in lowercase hex; a field with a capital letter.
            if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(first) {
                headers += bytes[lineStart..<lineEnd]
                headers.append(UInt8(ascii: "\n"))
                fields.append((nil, nil, nil))
            } else if !fields.isEmpty {
                let line = bytes[lineStart..<lineEnd]
                if let value = kibibytes(line, named: "Rss:") { fields[fields.count - 1].rss = value }
                else if let value = kibibytes(line, named: "Private_Dirty:") { fields[fields.count - 1].dirty = value }
                else if let value = kibibytes(line, named: "Anonymous:") { fields[fields.count - 1].anonymous = value }
            } else {
                throw EngineError.malformedProcFile(path: path, reason: "a field line comes before any mapping")
            }
            lineStart = lineEnd + 1
        }
        let mappings = try ProcMapsParser.parse(headers, path: path)
        return try zip(mappings, fields).map { mapping, field in
            guard let rss = field.rss, let dirty = field.dirty, let anonymous = field.anonymous else {
                throw EngineError.malformedProcFile(
                    path: path, reason: "mapping \(String(mapping.start, radix: 16))-\(String(mapping.end, radix: 16)) lacks Rss, Private_Dirty or Anonymous")
            }
            return ResidentMapping(mapping: mapping, residentKiB: rss, privateDirtyKiB: dirty, anonymousKiB: anonymous)
        }
    }

    /// The value of a `name   123 kB` line, nil for a line of another field or of another shape.
    private static func kibibytes(_ line: ArraySlice<UInt8>, named name: StaticString) -> UInt64? {
        let count = name.utf8CodeUnitCount
        guard line.count > count else { return nil }
        var index = line.startIndex
        for k in 0..<count {
            guard line[index] == name.utf8Start[k] else { return nil }
            index += 1
        }
        while index < line.endIndex, line[index] == UInt8(ascii: " ") { index += 1 }
        var value: UInt64 = 0
        var digits = 0
        while index < line.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(line[index]) {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(line[index] - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
            digits += 1
            index += 1
        }
        let unit = Array(" kB".utf8)
        guard digits > 0, line.endIndex - index == unit.count, line[index...].elementsEqual(unit) else { return nil }
        return value
    }
}
