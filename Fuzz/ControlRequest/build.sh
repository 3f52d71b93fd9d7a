#!/bin/sh
# Builds the libFuzzer harness for the control protocol into .build-fuzz/control-request-fuzzer.
# AgentProtocol (Foundation only) is compiled as its own instrumented module so the parser's
# `import AgentProtocol` resolves; the parser itself is compiled into the harness.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
modules="$out/control-request-modules"
mkdir -p "$modules"
flags="-sanitize=fuzzer,address -parse-as-library -Onone -g -swift-version 6 -use-ld=lld"
# shellcheck disable=SC2086
(cd "$modules" && swiftc $flags -module-name AgentProtocol -emit-module -emit-module-path "$modules/AgentProtocol.swiftmodule" \
    -c "$root"/Sources/AgentProtocol/*.swift)
# shellcheck disable=SC2086
swiftc $flags -module-name ControlRequestFuzz -I "$modules" \
    "$root/Fuzz/ControlRequest/ControlRequestFuzzer.swift" \
    "$root/Sources/AgentCore/Control/ControlRequestParser.swift" \
    "$modules"/*.o \
    -o "$out/control-request-fuzzer"
echo "built $out/control-request-fuzzer"
