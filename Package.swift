// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "hotpatch-agent",
    platforms: [.macOS(.v13)],
    products: [
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
        .target(
            name: "Engine",
            dependencies: [
                "CPtrace",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Builds and runs the C fixture programs for the tests, the demo and the benchmark.
        .target(name: "HotpatchFixtures", dependencies: ["Engine"]),
        // The control protocol and status schema shared by the daemon and agentctl.
        .target(name: "AgentProtocol"),
        // The daemon's logic and services; the executable only wires them.
        .target(
            name: "AgentCore",
            dependencies: [
                "Engine", "AgentProtocol", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .executableTarget(
            name: "Agent",
            dependencies: [
                "AgentCore", "Engine", "AgentProtocol",
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
                "Engine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Bench",
            dependencies: [
                "Engine", "HotpatchFixtures", "AgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Demo",
            dependencies: [
                "Engine", "HotpatchFixtures", "AgentProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "HotpatchFixtures"]),
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "AgentProtocol", "Engine", "HotpatchFixtures"]),
        // Drives the built hotpatch-pack binary as a publisher would.
        .testTarget(name: "PackTests", dependencies: ["Engine"]),
    ]
)
