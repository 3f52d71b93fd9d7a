// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "hotpatch-agent",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "LinuxSystem", targets: ["LinuxSystem"]),
        .library(name: "Architecture", targets: ["Architecture"]),
        .library(name: "Artifact", targets: ["Artifact"]),
        .library(name: "Engine", targets: ["Engine"]),
        .executable(name: "hotpatch-agent", targets: ["Agent"]),
        .executable(name: "agentctl", targets: ["AgentCtl"]),
        .executable(name: "hotpatch-pack", targets: ["Pack"]),
        .executable(name: "hotpatch-bench", targets: ["Bench"]),
        .executable(name: "hotpatch-demo", targets: ["Demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
    ],
    targets: [
        // Non-variadic wrappers for ptrace(2) and the wait-status macros, which Swift cannot call.
        .target(name: "CPtrace"),
        // libsystemd (sd_journal_sendv, sd_notify) found through pkg-config.
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // Capstone (libcapstone-dev), the disassembler hotpatch-pack checks function entries with.
        // Linked by the Pack target only: the host's agent and agentctl never carry it.
        .systemLibrary(
            name: "CCapstone",
            pkgConfig: "capstone",
            providers: [.apt(["libcapstone-dev"])]
        ),
        // elfutils' libdw (libdw-dev), which hotpatch-pack build reads DWARF inlining with.
        // Linked by the Pack target only, like Capstone.
        .systemLibrary(
            name: "CLibdw",
            pkgConfig: "libdw",
            providers: [.apt(["libdw-dev"])]
        ),
        // The system layer: the one place where system calls are made (files, sockets, watches,
        // child processes, ids) and errno becomes one error type. No ptrace here.
        .target(name: "LinuxSystem"),
        // Every fact about the processor (ELF machine and relocations, system call numbers and
        // registers, jump and stub encodings) behind one protocol; X86_64 is its one conformance.
        // Pure: no ptrace, no system calls.
        .target(name: "Architecture"),
        // The hotpatch artifact: channel format and verifier, the store, ELF reading, the hotpatch
        // model and the redirection planner. What hotpatch-pack needs, without any ptrace code.
        .target(
            name: "Artifact",
            dependencies: [
                "LinuxSystem", "Architecture",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The runtime: ptrace and /proc/PID/mem, the process model, patching, seccomp, the host
        // fan-out, with every x86_64 fact behind the Architecture seam.
        .target(name: "Engine", dependencies: ["CPtrace", "LinuxSystem", "Artifact", "Architecture"]),
        // Builds and runs the C fixture programs for the tests, the demo and the benchmark.
        .target(name: "HotpatchFixtures", dependencies: ["Engine", "Artifact", "LinuxSystem"]),
        // What only the tests use, on top of HotpatchFixtures (which it re-exports): the built
        // products, the repository's files, programs run off the cooperative threads. The demo
        // and the benchmark never link it.
        .target(name: "TestSupport", dependencies: ["HotpatchFixtures", "LinuxSystem"]),
        // The control protocol and status schema shared by the daemon and agentctl.
        .target(name: "AgentProtocol", dependencies: ["LinuxSystem"]),
        // The daemon's logic and services; the executable only wires them.
        .target(
            name: "AgentCore",
            dependencies: [
                "Engine", "Artifact", "Architecture", "LinuxSystem", "AgentProtocol", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .executableTarget(
            name: "Agent",
            dependencies: [
                "AgentCore", "Engine", "Artifact", "LinuxSystem", "AgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "AgentCtl",
            dependencies: [
                "AgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Pack",
            dependencies: [
                "Artifact", "Architecture", "LinuxSystem", "CCapstone", "CLibdw",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Bench",
            dependencies: [
                "Engine", "Artifact", "LinuxSystem", "HotpatchFixtures", "AgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Demo",
            dependencies: [
                "Engine", "Artifact", "LinuxSystem", "HotpatchFixtures", "AgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LinuxSystemTests", dependencies: ["LinuxSystem", "TestSupport"]),
        .testTarget(name: "ArtifactTests", dependencies: ["Artifact", "LinuxSystem", "Architecture", "TestSupport"]),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine", "Artifact", "LinuxSystem", "Architecture", "HotpatchFixtures", "CPtrace", "TestSupport"]
        ),
        .testTarget(
            name: "AgentCoreTests",
            dependencies: ["AgentCore", "AgentProtocol", "Engine", "Artifact", "LinuxSystem", "HotpatchFixtures", "TestSupport"]
        ),
        // Drives the built hotpatch-pack binary as a publisher would, and tests the parts of
        // `hotpatch-pack build` (diffs, the compiler wrapper, DWARF, the generator) directly.
        .testTarget(name: "PackTests", dependencies: ["Pack", "Artifact", "LinuxSystem", "TestSupport"]),
    ]
)
