import LinuxSystem
/// A process as a stable identity: a pid alone may be reused by a later process, pid plus start time not.
public struct ProcessIdentity: Hashable, Sendable {
    /// The process id.
    public var pid: ProcessID
    /// When the process started, in clock ticks since boot (field 22 of /proc/PID/stat).
    public var startTime: UInt64

    /// Describes an identity.
    public init(pid: ProcessID, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }
}

/// Parses the fields of /proc/PID/stat that the Engine needs.
///
/// Field 2, `(comm)`, may contain spaces and ')' itself, so the fields after it are found from the
/// LAST ')' in the file (proc(5)).
public enum ProcessStatParser {
    /// The state letter (field 3), parent (field 4), thread count (field 20) and start time
    /// (field 22); throws `malformedProcFile`.
    public static func parse(_ bytes: [UInt8], path: String) throws
        -> (state: Character, parent: ProcessID, threads: Int, startTime: UInt64) {
        func bad(_ reason: String) -> EngineError { .malformedProcFile(path: path, reason: reason) }
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { throw bad("no ')' closing the command name") }
        return try bytes.withUnsafeBufferPointer { buffer in
            var s = ByteScanner(buffer, from: close + 1)
            guard s.take(UInt8(ascii: " ")), let letter = s.peek, letter > 0x20, letter < 0x7f else {
                throw bad("no state letter after the command name")
            }
            let state = Character(Unicode.Scalar(letter))
            s.index += 1
            guard s.take(UInt8(ascii: " ")), let parent = s.decimal(), let parentID = Int32(exactly: parent) else {
                throw bad("field 4 (ppid) is not a number")
            }
            guard s.take(UInt8(ascii: " ")) else { throw bad("fewer than 22 fields") }
            func skipField() throws {
                while let b = s.peek, b != UInt8(ascii: " "), b != UInt8(ascii: "\n") { s.index += 1 }
                guard s.take(UInt8(ascii: " ")) else { throw bad("fewer than 22 fields") }
            }
            // Skip fields 5...19 (15 fields), read field 20, skip field 21, then read field 22.
            for _ in 5...19 { try skipField() }
            guard let threads = s.decimal(), let threadCount = Int(exactly: threads) else { throw bad("field 20 (num_threads) is not a number") }
            guard s.take(UInt8(ascii: " ")) else { throw bad("fewer than 22 fields") }
            try skipField()
            guard let start = s.decimal() else { throw bad("field 22 (starttime) is not a number") }
            return (state, ProcessID(parentID), threadCount, start)
        }
    }
}
