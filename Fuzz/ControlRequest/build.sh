#!/bin/sh
# Builds the libFuzzer harness for the control protocol into .build-fuzz/control-request-fuzzer.
# AgentProtocol (Foundation and LinuxSystem) is compiled as its own instrumented module so the
# parser's `import AgentProtocol` resolves; the parser itself is compiled into the harness.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
work="$out/control-request-modules"
mkdir -p "$work"
. "$root/Fuzz/modules.sh"
linux_system_module
module AgentProtocol 6 "$root"/Sources/AgentProtocol/*.swift
harness ControlRequestFuzz "$out/control-request-fuzzer" \
    "$root/Fuzz/ControlRequest/ControlRequestFuzzer.swift" "$root/Sources/AgentCore/Control/ControlRequestParser.swift"
echo "built $out/control-request-fuzzer"
