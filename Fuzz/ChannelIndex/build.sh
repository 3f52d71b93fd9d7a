#!/bin/sh
# Builds the libFuzzer harness for the channel index parser into .build-fuzz/channel-index-fuzzer.
# The harness imports Artifact; the parser needs no Crypto: only the Channel files below and the
# model types are compiled as that module (over LinuxSystem).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
work="$out/channel-index-modules"
mkdir -p "$work"
. "$root/Fuzz/modules.sh"
artifact="$root/Sources/Artifact"
linux_system_module
architecture_module
module Artifact 6 "$artifact/Channel/ChannelJSON.swift" "$artifact/Channel/ChannelIndex.swift" \
    "$artifact/Channel/ChannelKernel.swift" "$artifact/Channel/ChannelPath.swift" "$artifact/Channel/ChannelRefusal.swift" \
    "$artifact/Model/Hotpatch.swift" "$artifact/Model/KernelLivePatch.swift"
harness ChannelIndexFuzz "$out/channel-index-fuzzer" "$root/Fuzz/ChannelIndex/ChannelIndexFuzzer.swift"
echo "built $out/channel-index-fuzzer"
