import Foundation
import Glibc
import HotpatchFixtures

/// `Fixtures/control_holder.c` run as another user through setpriv: a local user who opens many
/// control connections and holds them without a word.
final class HostileControlClient: @unchecked Sendable {
    /// How the first burst went: connections still held, and those the agent closed (refused).
    let held: Int
    let refused: Int
    /// The first answer a refused connection got (the raw JSON line), or "(no answer)".
    let firstRefusal: String
    private let process: RunningProcess

    /// Opens `count` connections to `socket` as `uid`; with `reconnect` it keeps re-opening those the
    /// agent closes, with `drip` it sends one space a second on each (never a whole request).
    init(socket: String, count: Int, uid: uid_t = 65534, reconnect: Bool = false, drip: Bool = false) throws {
        let holder = try FixtureBuilder().build("control_holder.c", flags: ["-O2", "-Wall"])
        var arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", holder, socket, "\(count)"]
        if reconnect { arguments.append("--reconnect") }
        if drip { arguments.append("--drip") }
        process = try RunningProcess("/usr/bin/setpriv", arguments)
        let summary = try process.nextLine(timeout: 60).split(separator: " ")
        guard summary.count == 4, let held = Int(summary[1]), let refused = Int(summary[3]) else {
            throw FixtureError.toolFailed("control_holder printed \(summary.joined(separator: " "))")
        }
        self.held = held
        self.refused = refused
        firstRefusal = try process.nextLine(timeout: 5)
    }

    /// Stops the client (SIGTERM) and returns how many of its connections the agent closed in all.
    @discardableResult
    func stop() throws -> Int {
        process.signal(SIGTERM)
        let last = try process.waitForLine(timeout: 10) { $0.hasPrefix("refused ") }
        process.stop()
        return Int(last.dropFirst("refused ".count)) ?? -1
    }
}
