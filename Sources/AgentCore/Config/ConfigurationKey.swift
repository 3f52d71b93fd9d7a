/// Every key of `agent.toml`, with the command-line flag that overrides it (docs/CONFIGURATION.md).
public enum ConfigurationKey: String, CaseIterable, Sendable {
    case channel
    case trustedKeys = "trusted_keys"
    case stateDir = "state_dir"
    case runtimeDir = "runtime_dir"
    case pollInterval = "poll_interval"
    case reboot
    case rebootWindow = "reboot_window"
    case rebootRequiredFile = "reboot_required_file"
    case metricsFile = "metrics_file"
    case excludeExecutables = "exclude_executables"
    case excludeUnits = "exclude_units"
    case allowWritableChannel = "allow_writable_channel"
    case strictStackCheck = "strict_stack_check"
    case healthWindow = "health_window"
    case deadline

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
        }
    }

    /// Whether the key holds a list (a TOML array; the flag may be repeated).
    public var isList: Bool { self == .excludeExecutables || self == .excludeUnits }

    /// Whether the key holds a boolean (the flag takes `true` or `false`).
    public var isBoolean: Bool { self == .allowWritableChannel || self == .strictStackCheck }
}
