#!/bin/sh
# Builds the libFuzzer harness for the channel index parser into .build-fuzz/channel-index-fuzzer.
# The parser needs no Crypto and no Foundation: only the Channel files below and the model types.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
mkdir -p "$out"
engine="$root/Sources/Engine"
swiftc -sanitize=fuzzer,address -parse-as-library -Onone -g \
    -swift-version 6 -module-name ChannelIndexFuzz -use-ld=lld \
    "$root/Fuzz/ChannelIndex/ChannelIndexFuzzer.swift" \
    "$engine/Channel/ChannelJSON.swift" "$engine/Channel/ChannelIndex.swift" "$engine/Channel/ChannelPath.swift" \
    "$engine/Channel/ChannelRefusal.swift" "$engine/Model/Hotpatch.swift" \
    -o "$out/channel-index-fuzzer"
echo "built $out/channel-index-fuzzer"
