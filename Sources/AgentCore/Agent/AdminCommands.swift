import Artifact

/// A command an administrator sends over the control socket that changes what the agent wants.
enum AdminCommand: Equatable, Sendable {
    /// Lift a hold or quarantine on a hotpatch (`agentctl apply ID`).
    case apply(id: String)
    /// Revert a hotpatch everywhere and hold it (`agentctl revert ID`).
    case revert(id: String)
    /// Let the agent apply hotpatches (`agentctl enroll`).
    case enroll
    /// Revert our hotpatches and apply none (`agentctl unenroll`).
    case unenroll
}

/// What an administrator's command decides, before the agent reconciles: the state it leaves, the
/// events to log and the answer for `agentctl`.
struct AdminDecision: Equatable, Sendable {
    var state: AgentState
    var events: [AgentEvent]
    var answer: String
}

/// The decisions and texts of the administrator's commands, on the state alone: the agent checks
/// that the state is writable, applies the decision, logs its events, runs a cycle and answers.
enum AdminCommands {
    /// Decides `command` against `state` and the verified `channel`; an id the channel does not
    /// hold as a hotpatch is refused with `AgentCoreError.unknownRelease` naming it.
    static func decide(_ command: AdminCommand, state: AgentState, channel: VerifiedChannel?) throws(AgentCoreError) -> AdminDecision {
        var state = state
        switch command {
        case let .apply(id):
            try requireHotpatch(id, in: channel)
            // A kernel quarantine (`ID@kernel:BUILD-ID`) of the same release is lifted with it.
            let kernelKeys = state.quarantined.keys.filter { $0.hasPrefix(id + "@kernel:") }
            let wasHeld = state.held.contains(id), wasQuarantined = state.quarantined[id] != nil || !kernelKeys.isEmpty
            state.held.removeAll { $0 == id }
            state.quarantined[id] = nil
            for key in kernelKeys { state.quarantined[key] = nil }
            let lifted = wasQuarantined ? "the quarantine" : wasHeld ? "the hold" : "nothing"
            return AdminDecision(
                state: state,
                events: [.recorded(.released, release: id, "Administrator lifted \(lifted) on \(id)", level: .notice, metadata: ["hotpatch.id": id])],
                answer: wasHeld || wasQuarantined ? "\(id): released and applied where it is the desired level" : "\(id): nothing held; reconciled")
        case let .revert(id):
            try requireHotpatch(id, in: channel)
            if !state.held.contains(id) { state.held.append(id) }
            return AdminDecision(
                state: state,
                events: [.recorded(.held, release: id, "Administrator reverted and held \(id)", level: .notice, metadata: ["hotpatch.id": id])],
                answer: "\(id): reverted everywhere and held (agentctl apply \(id) to lift)")
        case .enroll:
            state.enrolled = true
            return AdminDecision(
                state: state, events: [.recorded(.enrolled, release: nil, "Host enrolled: hotpatches will be applied", level: .notice)],
                answer: "enrolled")
        case .unenroll:
            state.enrolled = false
            return AdminDecision(
                state: state,
                events: [.recorded(.unenrolled, release: nil, "Host unenrolled: reverting our hotpatches, applying none", level: .notice)],
                answer: "unenrolled: hotpatches reverted")
        }
    }

    private static func requireHotpatch(_ id: String, in channel: VerifiedChannel?) throws(AgentCoreError) {
        guard let channel, channel.hotpatches.contains(where: { $0.id == id }) else { throw .unknownRelease(id: id) }
    }
}
