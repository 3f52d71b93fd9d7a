import AgentProtocol
import Foundation

/// `hotpatch-agent --once`: one full cycle, busy processes retried until a deadline, then a report
/// on stderr and an exit status from the shared table (`ExitStatus`, docs/STATUS.md).
public enum OnceRun {
    /// Runs one cycle of `agent` (again while the channel is mid-publication), then retries busy
    /// processes with backoff (50 ms doubling to 2 s) until none is busy or `deadlineSeconds` have
    /// passed. Returns the status at the end.
    public static func run(_ agent: Agent, deadlineSeconds: Int) async -> AgentStatus {
        let deadline = Date().addingTimeInterval(Double(deadlineSeconds))
        await agent.runCycle()
        // A publication landing as the run starts is waited for (at most the settle time), as the daemon does.
        while let recheck = await agent.channelRecheckSeconds, Date() < deadline {
            try? await Task.sleep(for: .seconds(min(recheck, max(0, deadline.timeIntervalSinceNow))))
            await agent.runCycle()
        }
        var delay = 0.05
        while await agent.hasPendingProcesses, Date() < deadline {
            try? await Task.sleep(for: .seconds(min(delay, max(0, deadline.timeIntervalSinceNow))))
            delay = min(delay * 2, 2)
            await agent.rescan()
        }
        // The kernel's step runs beside the processes' passes: its outcome belongs to the report.
        await agent.kernelStepFinished()
        return await agent.status()
    }

    /// What `--once` writes to stderr: `hotpatch-agent: SUMMARY`, then every reason that is not
    /// up-to-date, indented, one a line.
    public static func report(_ status: AgentStatus) -> String {
        var lines = ["hotpatch-agent: \(StatusBuilder.summary(status))"]
        for reason in status.reasons where reason.verdict != .upToDate {
            lines.append("  \(reason.verdict.rawValue): \(reason.message)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The exit status of `--once`: the verdict's, as `agentctl status --exit-code` gives it.
    public static func exitStatus(_ status: AgentStatus) -> ExitStatus { ExitStatus(verdict: status.verdict) }
}
