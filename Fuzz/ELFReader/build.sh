#!/bin/sh
# Builds the libFuzzer harness for the ELF reader into .build-fuzz/elf-fuzzer.
# The harness imports Artifact; the ELF reader, the hotpatch model and the error types are compiled
# as that module (over LinuxSystem). The planner stays out: it imports Crypto, which is not needed
# to exercise the parser.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
work="$out/elf-modules"
mkdir -p "$work"
. "$root/Fuzz/modules.sh"
artifact="$root/Sources/Artifact"
linux_system_module
architecture_module
# shellcheck disable=SC2046
module Artifact 6 $(ls "$artifact"/ELF/*.swift | grep -v RedirectionPlanner.swift) \
    "$artifact"/Model/*.swift "$artifact/ArtifactError.swift" "$artifact/Channel/ChannelRefusal.swift"
harness ELFFuzz "$out/elf-fuzzer" "$root/Fuzz/ELFReader/ELFReaderFuzzer.swift"
echo "built $out/elf-fuzzer"
