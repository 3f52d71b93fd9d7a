import Dispatch
import Foundation
import Glibc

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP do not kill the demo: they are noted, and the scenario
/// notices at its next wait, stops, and cleans up (agent, service, temporary directory) as on any
/// failure. The demo's children lead their own process groups, so a terminal's Ctrl-C reaches
/// only the demo.
final class Interruption: @unchecked Sendable {
    // @unchecked: `signalName` and `signalNumber` are read and written under `lock`; `sources` only in install().
    static let shared = Interruption()

    private let lock = NSLock()
    private var signalName: String?
    private var signalNumber: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    /// Starts catching the signals (once, before any child starts).
    func install() {
        // A closed output pipe must not kill the demo before it has stopped its children.
        signal(SIGPIPE, SIG_IGN)
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                lock.lock()
                if signalName == nil {
                    signalName = name
                    signalNumber = number
                }
                lock.unlock()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// The first signal received, if any.
    var received: String? {
        lock.lock()
        defer { lock.unlock() }
        return signalName
    }

    /// The shell's exit status for death by that signal (128 + its number), 0 when none came.
    var exitStatus: Int32 {
        lock.lock()
        defer { lock.unlock() }
        return signalNumber == 0 ? 0 : 128 + signalNumber
    }

    /// Throws once a signal was received.
    func check() throws {
        if let received { throw DemoFailure("interrupted by \(received)") }
    }
}
