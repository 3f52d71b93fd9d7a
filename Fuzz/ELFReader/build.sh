#!/bin/sh
# Builds the libFuzzer harness for the ELF reader into .build-fuzz/elf-fuzzer.
# The planner stays out: it imports Crypto, which is not needed to exercise the parser.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
mkdir -p "$out"
engine="$root/Sources/Engine"
sources=$(ls "$engine"/ELF/*.swift | grep -v RedirectionPlanner.swift)
# shellcheck disable=SC2086
swiftc -sanitize=fuzzer,address -parse-as-library -Onone -g \
    -swift-version 6 -module-name ELFFuzz -use-ld=lld \
    "$root/Fuzz/ELFReader/ELFReaderFuzzer.swift" $sources \
    "$engine"/Model/*.swift "$engine/EngineError.swift" "$engine/System/SystemCall.swift" \
    "$engine/Channel/ChannelRefusal.swift" \
    -o "$out/elf-fuzzer"
echo "built $out/elf-fuzzer"
