#!/bin/sh
# Runs the channel index fuzzer for SECONDS (default 60) at the lowest priority, seeded with a
# valid index (every release kind) and a dictionary of the format's keys.
set -eu
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
corpus="$out/corpus-channel-index"
[ -x "$out/channel-index-fuzzer" ] || "$root/Fuzz/ChannelIndex/build.sh"
mkdir -p "$corpus" "$out/artifacts-channel-index"
cp "$root/Fuzz/ChannelIndex/seed-index.json" "$corpus/seed-index.json"
printf '{"format": 1, "version": 0, "expires": "1970-01-01T00:00:00Z", "releases": []}' > "$corpus/seed-empty.json"
exec nice -n 19 "$out/channel-index-fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -dict="$root/Fuzz/ChannelIndex/index.dict" \
    -artifact_prefix="$out/artifacts-channel-index/" -print_final_stats=1 "$corpus"
