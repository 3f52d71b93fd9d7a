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
        .executableTarget(
            name: "Agent",
            dependencies: [
                "Engine", "CSystemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "AgentCtl",
            dependencies: [
                "Engine",
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
                "Engine", "HotpatchFixtures",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "Demo",
            dependencies: [
                "Engine", "HotpatchFixtures",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "HotpatchFixtures"]),
        // Drives the built hotpatch-pack binary as a publisher would.
        .testTarget(name: "PackTests", dependencies: ["Engine"]),
    ]
)
