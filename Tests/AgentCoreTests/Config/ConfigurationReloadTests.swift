@testable import AgentCore
import Foundation
import Logging
import Testing

/// Which keys SIGHUP applies, and what a reload does with the others.
@Suite struct ConfigurationReloadTests {
    @Test func keysOpenedOnceAtStart_needARestart_everyOtherKeyAppliesOnReload() {
        let restart = ConfigurationKey.allCases.filter { !$0.appliesOnReload }
        #expect(restart == [.channel, .stateDir, .runtimeDir, .metricsFile, .execGate])
    }

    @Test func documentation_saysForEveryKeyWhetherReloadAppliesIt() throws {
        let text = try String(contentsOfFile: repositoryRoot + "/docs/CONFIGURATION.md", encoding: .utf8)
        var documented: [String: String] = [:]
        for row in text.split(separator: "\n") where row.hasPrefix("| `") {
            // Cells are split at " | ": a flag's choices are written `never\|request`.
            let cells = row.dropFirst(2).components(separatedBy: " | ")
            guard cells.count >= 5 else { continue }
            documented[cells[0].trimmingCharacters(in: ["`"])] = cells[3]
        }
        for key in ConfigurationKey.allCases {
            #expect(documented[key.rawValue] == (key.appliesOnReload ? "yes" : "no"), "\(key.rawValue): \(documented[key.rawValue] ?? "not in the table")")
        }
    }

    @Test func reload_keepsTheRunningValueOfKeysThatNeedARestart_andAppliesTheRest() throws {
        let running = AgentConfiguration()
        var new = running
        new.runtimeDirectory = "/run/elsewhere"
        new.metricsFile = "/var/lib/prometheus/hotpatch.prom"
        new.pollIntervalSeconds = 60
        new.strictStackCheck = true
        let (reloaded, refused) = running.reloaded(to: new)
        #expect(refused == [.runtimeDir, .metricsFile])
        #expect(reloaded.socketPath == running.socketPath)
        #expect(reloaded.metricsFile == nil)
        #expect(reloaded.pollIntervalSeconds == 60)
        #expect(reloaded.strictStackCheck)
        #expect(running.reloaded(to: running).refused.isEmpty, "an unchanged file refuses nothing")
    }

    @Test func reloadRefusal_namesEachKeyWithItsRunningAndNewValue_andSaysToRestart() throws {
        let running = AgentConfiguration()
        var new = running
        new.runtimeDirectory = "/run/elsewhere"
        let line = try #require(running.reloadRefusal([.runtimeDir], new: new))
        #expect(line == "Not applying runtime_dir (/run/hotpatch-agent → /run/elsewhere) on reload: it cannot change while the agent runs; "
            + "restart it to apply (systemctl restart hotpatch-agent); the rest of the configuration is reloaded")
        #expect(running.reloadRefusal([], new: new) == nil)
    }

    @Test func agentReload_refusesANewSocketPath_namingIt_whileANewLiveKeyAppliesAndTheStrictCheckReachesThePatcher() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = AgentConfiguration.defaults(under: directory.path)
        let agent = Agent(configuration: configuration, logger: Logger(label: "reload-test"), version: "test", workers: 1)
        #expect(await agent.patchOptionsInForce.strictStackCheck == false)

        var new = configuration
        new.runtimeDirectory = directory.path + "/other-run"
        new.pollIntervalSeconds = 42
        new.strictStackCheck = true
        new.excludeUnits = ["db.service"]
        let refused = await agent.reload(new)

        #expect(refused == [.runtimeDir])
        let inForce = await agent.configuration
        #expect(inForce.socketPath == configuration.socketPath)
        #expect(inForce.pollIntervalSeconds == 42)
        #expect(inForce.excludeUnits == ["db.service"])
        #expect(await agent.patchOptionsInForce.strictStackCheck)
    }
}
