#!/bin/sh
# Runs the agent.toml fuzzer for SECONDS (default 60) at the lowest priority, seeded with a file
# setting every key, an empty one, one full of mistakes and one of unusual TOML shapes, and a
# dictionary of the keys, values and TOML syntax. Further arguments go to libFuzzer, e.g.
# `-fork=1 -ignore_crashes=1` to go on past toml++ assertion failures (see README).
# No leak checks (neither libFuzzer's per input nor ASan's at exit): TOMLKit 0.6 leaks a few dozen
# bytes per parse (TOMLTable(string:) never frees its error buffer, nor the key list of
# tableGetKeys); the agent parses once at start and once per SIGHUP.
seconds=${1:-60}
[ $# -gt 0 ] && shift
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 exec "$(dirname "$0")/../run-seeded.sh" Configuration configuration toml.dict 4096 "$seconds" -detect_leaks=0 "$@"
