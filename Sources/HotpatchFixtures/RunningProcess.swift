import Engine
import Foundation
import Glibc
import LinuxSystem

/// A fixture process started by a test, with its standard output readable line by line. It is
/// killed and reaped when stopped or released.
public final class RunningProcess: @unchecked Sendable {
    /// Its pid.
    public let pid: Int32
    private let output: Int32
    private var buffer: [UInt8] = []
    /// Every line read so far, oldest first.
    public private(set) var history: [String] = []
    private var reaped = false
    private var exitStatus: Int32 = 0

    /// Starts `path` with `arguments`; standard error goes to ours. With `ownProcessGroup`, the
    /// process leads a group of its own, so a Ctrl-C meant for the caller does not reach it.
    public init(_ path: String, _ arguments: [String] = [], environment: [String: String]? = nil, ownProcessGroup: Bool = false) throws {
        let pipe = try ChildProcess.pipe()
        defer { close(pipe.write) }
        do {
            pid = try ChildProcess.spawn(path, arguments, environment: environment, standardOutput: .descriptor(pipe.write),
                                         ownProcessGroup: ownProcessGroup).rawValue
        } catch {
            close(pipe.read)
            throw error
        }
        output = pipe.read
    }

    /// The process's identity as the Engine sees it.
    public func identity() throws -> ProcessIdentity { try ProcFS.identity(of: ProcessID(pid)) }

    /// The next line of output, waiting up to `timeout` seconds.
    public func nextLine(timeout: Double = 5) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                history.append(line)
                return line
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw FixtureError.timeout("no output line from pid \(pid) within \(timeout) s") }
            if try readable(waitingMilliseconds: Int32(min(remaining, 1) * 1000)) {
                guard try readChunk(size: 4096) else { throw FixtureError.timeout("pid \(pid) closed its output (exited?)") }
            }
        }
    }

    /// The first line read so far, or the next one to come, that satisfies `predicate`.
    public func line(timeout: Double = 5, where predicate: (String) -> Bool) throws -> String {
        if let seen = history.first(where: predicate) { return seen }
        return try waitForLine(timeout: timeout, where: predicate)
    }

    /// Skips output until a line satisfies `predicate`, returning it.
    public func waitForLine(timeout: Double = 5, where predicate: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let line = try nextLine(timeout: max(0.01, deadline.timeIntervalSinceNow))
            if predicate(line) { return line }
        }
    }

    /// The most recent complete line after draining what is buffered now plus one fresh line.
    public func freshLine(timeout: Double = 5) throws -> String {
        while try readable(waitingMilliseconds: 0), try readChunk(size: 65536) {}
        if let last = buffer.lastIndex(of: UInt8(ascii: "\n")) { buffer.removeSubrange(...last) }
        return try nextLine(timeout: timeout)
    }

    /// Whether its output has something to read (or has closed) within `waitingMilliseconds`.
    private func readable(waitingMilliseconds: Int32) throws -> Bool {
        do {
            return try Descriptor.waitReadable([output], timeoutMilliseconds: waitingMilliseconds, subject: "output of pid \(pid)")[0]
        } catch {
            throw FixtureError.setUp(error.description)
        }
    }

    /// Appends what one read of its output returns to the buffer; false at the end of the output.
    private func readChunk(size: Int) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: size)
        let count: Int?
        do { count = try Descriptor.read(output, into: &chunk, subject: "output of pid \(pid)") } catch {
            throw FixtureError.setUp(error.description)
        }
        guard let count, count > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    /// Whether the process is still running (not exited, not a zombie).
    public var isAlive: Bool { !reapIfEnded() }

    /// Reaps the process if it has ended (without waiting); returns whether it is reaped.
    private func reapIfEnded() -> Bool {
        if reaped { return true }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid || (result == -1 && errno == ECHILD) else { return false }
        reaped = true
        exitStatus = status
        return true
    }

    /// The raw wait status once the process has ended.
    public var waitStatus: Int32? { reaped ? exitStatus : nil }

    /// Sends `signal` to the process.
    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Kills and reaps the process, waiting at most `seconds`; returns whether it was reaped.
    /// A killed process stays unreapable while a tracer holds a dead thread of it without reaping
    /// that thread, so the wait is bounded: a test then fails instead of hanging.
    @discardableResult
    public func stop(within seconds: Double = 10) -> Bool {
        if reaped { return true }
        kill(pid, SIGKILL)
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if reapIfEnded() { return true }
            usleep(1_000)
        } while Date() < deadline
        FileHandle.standardError.write(Data("process \(pid) was killed but could not be reaped within \(seconds) s\n".utf8))
        return false
    }

    deinit {
        stop()
        close(output)
    }
}
