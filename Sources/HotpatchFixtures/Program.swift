import Foundation
import LinuxSystem

/// How a program run to its end ended, and what it printed.
public struct ProgramRun: Sendable, Equatable {
    /// Its exit code; 128 + N when killed by signal N (so 137 when its time ran out).
    public var status: Int32
    /// Its standard output.
    public var stdout: String
    /// Its standard error.
    public var stderr: String

    /// Standard output followed by standard error, for messages.
    public var output: String { stdout + stderr }
}

/// Runs the programs of fixtures and tests (compilers, hotpatch-pack, agentctl, dpkg…) to their end:
/// standard input /dev/null, both outputs collected, and a time limit after which the program is
/// killed, so a hung tool fails a test instead of hanging it. Built on `ChildProcess.run`
/// (posix_spawn, poll, waitpid on the calling thread), not Foundation's `Process`, whose exit notice
/// never comes while every cooperative thread is blocked.
public enum Program {
    /// How long a program may run unless the caller says otherwise.
    public static let defaultTimeoutSeconds: Double = 300

    /// Runs `program` with `arguments` and returns how it ended; only a failure to start it throws.
    /// A `program` without a slash is looked up in `PATH`; `directory` is its working directory
    /// (ours when nil); `environment` replaces ours when given.
    public static func run(_ program: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                           in directory: String? = nil, timeoutSeconds: Double = defaultTimeoutSeconds) throws -> ProgramRun {
        // env(1) does the PATH look-up and the change of directory, which posix_spawn does not.
        var command = [program] + arguments
        if let directory { command = ["/usr/bin/env", "--chdir=\(directory)", "--"] + command }
        else if !program.contains("/") { command = ["/usr/bin/env", "--"] + command }
        let finished: ChildProcess.Finished
        do {
            finished = try ChildProcess.run(command[0], Array(command.dropFirst()), environment: environment,
                                            timeoutSeconds: timeoutSeconds)
        } catch {
            throw FixtureError.toolFailed("cannot start \(program): \(error)")
        }
        return ProgramRun(status: finished.status, stdout: String(decoding: finished.output, as: UTF8.self),
                          stderr: String(decoding: finished.errorOutput, as: UTF8.self))
    }

    /// Runs `program` like `run` and throws `FixtureError.toolFailed`, naming the command and what
    /// it printed, unless it exits 0.
    @discardableResult
    public static func succeed(_ program: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                               in directory: String? = nil, timeoutSeconds: Double = defaultTimeoutSeconds) throws -> ProgramRun {
        let started = Date()
        let run = try run(program, arguments, environment: environment, in: directory, timeoutSeconds: timeoutSeconds)
        guard run.status == 0 else {
            let command = ([program] + arguments).joined(separator: " ")
            if run.status == 128 + SIGKILL && Date().timeIntervalSince(started) >= timeoutSeconds {
                throw FixtureError.timeout("\(command) still ran after \(timeoutSeconds) s")
            }
            throw FixtureError.toolFailed("\(command) exited with status \(run.status): \(run.output)")
        }
        return run
    }
}
