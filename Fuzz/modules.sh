# Sourced by each Fuzz/*/build.sh. The harnesses import the package's modules (LinuxSystem,
# Artifact, AgentProtocol, …) as `swift build` does; SwiftPM cannot build them with libFuzzer's
# instrumentation, so each one is compiled here as an instrumented module of its own, in
# dependency order, into "$work" (set by the caller) with its objects in "$work/NAME".
# shellcheck shell=sh
# `-package-name` as SwiftPM passes it, so `package` symbols are shared between the modules.
flags="-sanitize=fuzzer,address -parse-as-library -Onone -g -use-ld=lld -package-name hotpatch_agent"
# Extra swiftc arguments for every module and the harness (e.g. `-I` for a C module).
extra_includes=${extra_includes:-}

# module NAME MODE SOURCES...: the module NAME in Swift language mode MODE.
module() {
    name=$1; mode=$2; shift 2
    mkdir -p "$work/$name"
    rm -f "$work/$name"/*.o
    # shellcheck disable=SC2086
    (cd "$work/$name" && swiftc $flags -swift-version "$mode" -I "$work" $extra_includes -module-name "$name" \
        -emit-module -emit-module-path "$work/$name.swiftmodule" -c "$@")
}

# harness NAME OUTPUT SOURCES... [OBJECTS...]: the fuzzer executable, linked with every module built.
harness() {
    name=$1; output=$2; shift 2
    # shellcheck disable=SC2086
    swiftc $flags -swift-version 6 -I "$work" $extra_includes -module-name "$name" "$@" "$work"/*/*.o -o "$output"
}

# The system layer, which every other module imports.
linux_system_module() {
    module LinuxSystem 6 "$root"/Sources/LinuxSystem/*.swift
}

# The architecture seam (the host's ELF machine, relocation kinds, jumps), which Artifact imports.
architecture_module() {
    # shellcheck disable=SC2046
    module Architecture 6 $(find "$root/Sources/Architecture" -name '*.swift' | sort)
}
