/// Every key of `agent.toml`, with the command-line flag that overrides it (docs/CONFIGURATION.md).
public enum ConfigurationKey: String, CaseIterable, Sendable {
    /// The channel directory.
    case channel
    /// The trusted keys directory.
    case trustedKeys = "trusted_keys"
    /// The state directory.
    case stateDir = "state_dir"
    /// The runtime directory (control socket).
    case runtimeDir = "runtime_dir"
    /// Time between channel polls.
    case pollInterval = "poll_interval"
    /// The reboot policy.
    case reboot
    /// When `auto` may reboot.
    case rebootWindow = "reboot_window"
    /// The Debian reboot flag file.
    case rebootRequiredFile = "reboot_required_file"
    /// The node-exporter textfile.
    case metricsFile = "metrics_file"
    /// Executable globs never patched.
    case excludeExecutables = "exclude_executables"
    /// systemd units never patched.
    case excludeUnits = "exclude_units"
    /// Accept a group- or world-writable channel.
    case allowWritableChannel = "allow_writable_channel"
    /// Refuse to patch while a stack returns into a patched function.
    case strictStackCheck = "strict_stack_check"
    /// How soon after patching a crash reverts and quarantines.
    case healthWindow = "health_window"
    /// How long `--once` retries busy processes.
    case deadline
    /// How long a kernel live patch's transition may take before it counts as stalled.
    case kernelTransitionTimeout = "kernel_transition_timeout"
    /// Hold new processes that exec or load a targeted file until patched (fanotify permission events).
    case execGate = "exec_gate"

    /// The flag of `hotpatch-agent` that overrides this key (list keys: repeat the flag).
    public var flag: String {
        switch self {
        case .channel: return "--channel"
        case .trustedKeys: return "--trusted-keys"
        case .stateDir: return "--state-dir"
        case .runtimeDir: return "--runtime-dir"
        case .pollInterval: return "--poll-interval"
        case .reboot: return "--reboot-policy"
        case .rebootWindow: return "--reboot-window"
        case .rebootRequiredFile: return "--reboot-required-file"
        case .metricsFile: return "--metrics-file"
        case .excludeExecutables: return "--exclude-executable"
        case .excludeUnits: return "--exclude-unit"
        case .allowWritableChannel: return "--allow-writable-channel"
        case .strictStackCheck: return "--strict-stack-check"
        case .healthWindow: return "--health-window"
        case .deadline: return "--deadline"
        case .kernelTransitionTimeout: return "--kernel-transition-timeout"
        case .execGate: return "--exec-gate"
        }
    }

    /// Whether the key holds a list (a TOML array; the flag may be repeated).
    public var isList: Bool { self == .excludeExecutables || self == .excludeUnits }

    /// Whether the key holds a boolean (the flag takes `true` or `false`).
    public var isBoolean: Bool { self == .allowWritableChannel || self == .strictStackCheck || self == .execGate }

    /// Whether SIGHUP (`systemctl reload`) applies a new value of this key to the running agent.
    /// The others are opened once at start (the watched channel directory, the state directory and
    /// its store, the control socket, the metrics writer): a reload that changes one keeps the
    /// running value, names the key and says a restart is needed (docs/CONFIGURATION.md).
    public var appliesOnReload: Bool {
        switch self {
        case .channel, .stateDir, .runtimeDir, .metricsFile, .execGate: return false
        case .trustedKeys, .pollInterval, .reboot, .rebootWindow, .rebootRequiredFile, .excludeExecutables, .excludeUnits,
             .allowWritableChannel, .strictStackCheck, .healthWindow, .deadline, .kernelTransitionTimeout:
            return true
        }
    }
}
