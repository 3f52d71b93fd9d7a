#!/bin/sh
# Runs the harness Fuzz/DIR builds as .build-fuzz/NAME-fuzzer for SECONDS (default 60) at the lowest
# priority, from the seeds in Fuzz/DIR/seeds and the dictionary Fuzz/DIR/DICT; inputs up to MAX_LEN
# bytes. Further arguments go to libFuzzer. Usage: run-seeded.sh DIR NAME DICT MAX_LEN [SECONDS [ARGS]]
set -eu
dir=$1 name=$2 dict=$3 max_len=$4
shift 4
seconds=${1:-60}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.build-fuzz"
corpus="$out/corpus-$name"
[ -x "$out/$name-fuzzer" ] || "$root/Fuzz/$dir/build.sh"
mkdir -p "$corpus" "$out/artifacts-$name"
cp "$root/Fuzz/$dir"/seeds/* "$corpus/"
exec nice -n 19 "$out/$name-fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$max_len" -dict="$root/Fuzz/$dir/$dict" \
    -artifact_prefix="$out/artifacts-$name/" -print_final_stats=1 "$@" "$corpus"
