#!/bin/sh
# Builds the fuzz preset and runs every libFuzzer target for a bounded time on a copy of its
# seed corpus (new inputs land in build/fuzz/corpus/, the checked-in seeds stay as they are).
# Exits non-zero when a target crashes or reports a property failure; the reproducer is left
# in build/fuzz/artifacts/.
#   fuzz/run.sh             every target for 60 s each
#   FUZZ_SECONDS=10 fuzz/run.sh
set -eu
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -gt 2 ] && jobs=2

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs"

status=0
for target in fuzz_http_parser; do
    seeds="fuzz/corpus/${target#fuzz_}"
    work="build/fuzz/corpus/${target#fuzz_}"
    artifacts="build/fuzz/artifacts/$target/"
    dictionary=""
    [ -f "fuzz/${target#fuzz_}.dict" ] && dictionary="-dict=fuzz/${target#fuzz_}.dict"
    mkdir -p "$work" "$artifacts"
    echo "=== $target for ${seconds}s ==="
    if ! build/fuzz/fuzz/$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts" \
        $dictionary "$work" "$seeds"; then
        echo "fuzz/run.sh: $target failed; reproducers in $artifacts" >&2
        status=1
    fi
done
exit $status
