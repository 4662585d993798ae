#!/bin/sh
# The main job: installs what is missing, builds the release preset, then starts arkend in
# the foreground with its embedded default configuration (REST on 127.0.0.1:8888). Extra
# arguments go to arkend (e.g. -c FILE, -d). Stop it with Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)"
if [ -x build/release/apps/arkend/arkend ]; then
    exec build/release/apps/arkend/arkend -D "$@"
fi
if [ -x build/release/bench/aco/bench_aco ]; then
    echo "run.sh: arkend is not built yet; running the co-routine benchmark instead"
    exec build/release/bench/aco/bench_aco "$@"
fi
echo "run.sh: nothing to run yet (neither arkend nor the co-routine benchmark is built)" >&2
exit 1
