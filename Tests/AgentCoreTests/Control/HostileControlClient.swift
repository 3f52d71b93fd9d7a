import Foundation
import Glibc
import HotpatchFixtures

/// `Fixtures/control_holder.c` run as another user through setpriv: a local user who opens many
/// control connections and holds them without a word.
final class HostileControlClient: @unchecked Sendable {
    private let process: RunningProcess
    /// Built once per test process: tests running in parallel must not compile it side by side.
    private static let holder = Result { try FixtureBuilder().build("control_holder.c", flags: ["-O2", "-Wall"]) }

    /// Opens `count` connections to `socket` as `uid` and returns once all are connected (admitted,
    /// refused or queued); with `reconnect` it keeps re-opening those the agent closes, once its
    /// burst is read; with `drip` it sends one space a second on each (never a whole request), with
    /// `request` it sends that line on each.
    init(socket: String, count: Int, uid: uid_t = 65534, reconnect: Bool = false, drip: Bool = false,
         request: String? = nil) throws {
        let holder = try Self.holder.get()
        var arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", holder, socket, "\(count)"]
        if reconnect { arguments.append("--reconnect") }
        if drip { arguments.append("--drip") }
        if let request { arguments += ["--request", request] }
        process = try RunningProcess("/usr/bin/setpriv", arguments)
        _ = try process.waitForLine(timeout: 60) { $0.hasPrefix("opened ") }
    }

    /// How the first burst went: connections admitted, connections refused "agent busy" (or not
    /// accepted at all), and the first answer the agent gave (the raw JSON line, or "(no answer)").
    struct Burst {
        let held: Int
        let refused: Int
        let firstAnswer: String
    }

    /// The burst as the client saw it. Call it only after the agent answered a connection made after
    /// this client's (root's status, say): the agent accepts in order and refuses at once, so every
    /// refusal of the burst has then arrived.
    func burst() throws -> Burst {
        process.signal(SIGUSR1)
        let summary = try process.waitForLine(timeout: 30) { $0.hasPrefix("held ") }.split(separator: " ")
        guard summary.count == 4, let held = Int(summary[1]), let refused = Int(summary[3]) else {
            throw FixtureError.toolFailed("control_holder printed \(summary.joined(separator: " "))")
        }
        return Burst(held: held, refused: refused, firstAnswer: try process.nextLine(timeout: 5))
    }

    /// Stops the client (SIGTERM) and returns how many of its connections the agent closed in all
    /// (refused, answered, or dropped for silence), counting those that could not connect.
    @discardableResult
    func stop() throws -> Int {
        process.signal(SIGTERM)
        let last = try process.waitForLine(timeout: 10) { $0.hasPrefix("closed ") }
        process.stop()
        return Int(last.dropFirst("closed ".count)) ?? -1
    }
}
