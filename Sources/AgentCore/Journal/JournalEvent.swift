import Logging

/// Every event the agent reports to the journal, each with a fixed `MESSAGE_ID`.
///
/// The raw value is what callers put in the `event` metadata key; the ids were generated once with
/// `systemd-id128 new` and must never change, because administrators and the catalog key on them.
public enum JournalEvent: String, CaseIterable, Sendable {
    case checked
    case applied
    case applyFailed = "apply-failed"
    case reverted
    case quarantined
    case healthIgnored = "health-ignored"
    case baselineInstalled = "baseline-installed"
    case rebootRequired = "reboot-required"
    case verificationFailed = "verification-failed"
    case processUnpatchable = "process-unpatchable"
    case started
    case stopping
    case reloaded
    case enrolled
    case unenrolled
    /// `agentctl revert`: an administrator reverted a hotpatch everywhere and holds it.
    case held
    /// `agentctl apply`: an administrator lifted a hold or quarantine (or asked to reconcile).
    case released
    /// A kernel live patch was loaded and its transition completed.
    case kernelApplied = "kernel-applied"
    /// A kernel live patch replaced another (atomic replace: level N+1 over N).
    case kernelReplaced = "kernel-replaced"
    /// Our kernel live patches were disabled and unloaded.
    case kernelReverted = "kernel-reverted"
    /// A kernel live patch's transition stalled (in transition past the stall time, or reverted).
    case kernelStalled = "kernel-stalled"
    /// Loading or removing a kernel live patch failed, or a health signal reverted it.
    case kernelFailed = "kernel-failed"
    /// A kernel live patch exists for the running kernel, but it cannot be loaded here.
    case kernelNotApplicable = "kernel-not-applicable"
    /// The fixed packages a hotpatch carries were installed on disk after its processes were patched.
    case packagesInstalled = "packages-installed"
    /// Installing the fixed packages a hotpatch carries failed (the hotpatch stays applied).
    case packagesInstallFailed = "packages-install-failed"
    /// A process maps an object the hotpatch in force fixes but could not be patched: it still runs
    /// vulnerable code (named with its systemd unit).
    case processVulnerable = "process-vulnerable"

    /// The journal `MESSAGE_ID`: 32 lowercase hex digits, fixed forever.
    public var messageID: String {
        switch self {
        case .checked: "06e1b21c919a405b9b6f3686315219d1"
        case .applied: "dd23786464f3442c8c85d35313ba3cbc"
        case .applyFailed: "abed75812bf34c52aed1905327f35285"
        case .reverted: "284261bde36d410aa66c302f150faff6"
        case .quarantined: "a6fd6a680cf04b778b4057a8c4c35337"
        case .healthIgnored: "86f656f1ba62418988753dd298ada6a5"
        case .baselineInstalled: "b7f2e52bf5eb402c9bfd7a67792dc7b7"
        case .rebootRequired: "0bb2d2e4e104443983743621334aa25c"
        case .verificationFailed: "3b14140c65d245b498a8113957d2d9a0"
        case .processUnpatchable: "88a9a25a58494416984f140a9d99c0a4"
        case .started: "80617e3fd90b4e078e7ae864893b2736"
        case .stopping: "d6538ac2658d4581939ac3e1950cc33f"
        case .reloaded: "f6edaa3507ff488cb26fcd3d3e757859"
        case .enrolled: "3bd4a5be308c4d6691f55e1be7752902"
        case .unenrolled: "1c8cad7b6ac84280976df3bce3b7aa33"
        case .held: "4b42b95450ca4cc6aa6478c0373cab55"
        case .released: "a4235490809546d99d9d7a58d17529f7"
        case .kernelApplied: "81c6857cf81a43d79b62c47378e192cb"
        case .kernelReplaced: "006c8a2f84114290878bb901618ea095"
        case .kernelReverted: "67e1d6c91d0c497d9b2cbee16a21717f"
        case .kernelStalled: "3249774575ba4c8eba9bf0861c58a7f6"
        case .kernelFailed: "86183a0210ac42dfacebd342e32acbaa"
        case .kernelNotApplicable: "3fac65a694794bca9ec230a749b69ce7"
        case .packagesInstalled: "3ee18f694484489f8e796b71c0a2a0e8"
        case .packagesInstallFailed: "2f8f3e0b20af42e6bcba14ddcec287f7"
        case .processVulnerable: "8f471036c175410c924e1c3326dfba8a"
        }
    }

    /// The level this event is logged at unless the caller has a reason to differ.
    public var defaultLevel: Logger.Level {
        switch self {
        case .checked: .info
        case .applied, .reverted, .baselineInstalled, .rebootRequired, .enrolled, .unenrolled, .held, .released: .notice
        case .kernelApplied, .kernelReplaced, .kernelReverted, .packagesInstalled: .notice
        case .processUnpatchable, .healthIgnored, .kernelNotApplicable, .kernelStalled, .processVulnerable: .warning
        case .kernelFailed, .packagesInstallFailed: .error
        // A quarantine means a patched process crashed: the issue asks for priority `err`.
        case .applyFailed, .quarantined, .verificationFailed: .error
        case .started, .stopping, .reloaded: .info
        }
    }

    /// The event whose `MESSAGE_ID` is `id`, if any.
    public init?(messageID id: String) {
        guard let event = Self.allCases.first(where: { $0.messageID == id }) else { return nil }
        self = event
    }
}

extension Logger {
    /// Logs `event` at its default level (or `level`), with `event` set in the metadata so the
    /// journal handler adds the event's `MESSAGE_ID`.
    public func log(
        event: JournalEvent,
        level: Logger.Level? = nil,
        _ message: @autoclosure () -> Logger.Message,
        metadata: @autoclosure () -> Logger.Metadata? = nil,
        file: String = #fileID,
        function: String = #function,
        line: UInt = #line
    ) {
        var fields = metadata() ?? [:]
        fields["event"] = .string(event.rawValue)
        self.log(
            level: level ?? event.defaultLevel, message(), metadata: fields,
            file: file, function: function, line: line)
    }
}
