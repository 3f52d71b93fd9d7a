#!/bin/sh
# Runs the ELF reader fuzzer for SECONDS (default 60) at the lowest priority, on a seed corpus of
# real objects (/bin/true, libc.so.6, a compiled patch object) created on first use.
set -eu
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.build-fuzz"
corpus="$out/corpus-elf"
[ -x "$out/elf-fuzzer" ] || "$root/Fuzz/ELFReader/build.sh"
if [ ! -d "$corpus" ]; then
    mkdir -p "$corpus"
    cp /bin/true "$corpus/true"
    cp /lib/x86_64-linux-gnu/libc.so.6 "$corpus/libc.so.6"
    printf 'extern int counter;\nint fixed(int x) { return x + counter; }\nint *p = &counter;\n' > "$out/seed-patch.c"
    cc -shared -fPIC -O1 -o "$corpus/patch.so" "$out/seed-patch.c"
    cc -O1 -o "$corpus/nopie" -no-pie "$out/seed-patch.c" -Wl,--unresolved-symbols=ignore-all -nostartfiles 2>/dev/null || true
fi
mkdir -p "$out/artifacts"
exec nice -n 19 "$out/elf-fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$corpus"
