import AgentCore
import Engine
import LinuxSystem
import Testing

/// The one place that decides which processes are never patched (the agent passes its
/// configuration; the Engine's HostPatcher applies it).
@Suite struct ExclusionPolicyTests {
    private let policy = ExclusionPolicy(agent: ProcessID(900), executableGlobs: ["/usr/sbin/sshd", "*/java"],
                                         units: ["postgresql@16-main.service"])
    private let cgroup = "0::/system.slice/system-postgresql.slice/postgresql@16-main.service\n"

    @Test func theAgentItself_isExcluded_butNotCountedAsConfigured() {
        let exclusion = policy.exclusion(of: ProcessID(900), executable: "/usr/sbin/hotpatch-agent") { nil }
        #expect(exclusion == .agentItself)
        #expect(exclusion?.isConfigured == false)
    }

    @Test func configuredGlobsAndUnits_excludeWithTheirReason() {
        #expect(policy.exclusion(of: ProcessID(20), executable: "/opt/jdk/bin/java") { nil } == .executable(glob: "*/java"))
        let unit = policy.exclusion(of: ProcessID(21), executable: "/usr/lib/postgresql/16/bin/postgres") { cgroup }
        #expect(unit == .unit("postgresql@16-main.service"))
        #expect(unit?.isConfigured == true)
        #expect(unit?.description == "excluded by configuration (unit postgresql@16-main.service)")
        #expect(policy.exclusion(of: ProcessID(22), executable: "/usr/bin/app") { "0::/user.slice/app.scope\n" } == nil)
    }

    @Test func pid1_isProtected_unlessConfigurationAlreadyExcludesIt() {
        #expect(policy.exclusion(of: ProcessID(1), executable: "/usr/lib/systemd/systemd") { "0::/init.scope\n" } == .initProcess)
        #expect(policy.exclusion(of: ProcessID(1), executable: "/usr/sbin/sshd") { nil } == .executable(glob: "/usr/sbin/sshd"))
    }

    @Test func cgroupIsReadOnlyWhenUnitsAreConfigured() {
        let noUnits = ExclusionPolicy(agent: ProcessID(900), executableGlobs: [], units: [])
        #expect(noUnits.exclusion(of: ProcessID(30), executable: "/usr/bin/app") {
            Issue.record("cgroup read without units")
            return nil
        } == nil)
    }
}
