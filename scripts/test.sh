#!/bin/sh
# Runs the whole test suite: installs what is missing, then builds and runs ctest plainly
# (warnings as errors), under ASan+UBSan, under TSan, cross-built for aarch64 under qemu,
# checks the installed package with pkg-config, and checks formatting.
#   scripts/test.sh            everything
#   scripts/test.sh dev asan   only those steps (format dev release asan tsan aarch64 install fuzz)
set -eu
cd "$(dirname "$0")/.."

scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
steps="${*:-format dev asan tsan aarch64 install fuzz}"

run_preset() {
    echo "=== preset $1 ==="
    cmake --preset "$1" >/dev/null
    cmake --build --preset "$1" -j "$jobs"
    ctest --preset "$1"
}

for step in $steps; do
    case "$step" in
    format)
        echo "=== clang-format ==="
        git ls-files '*.c' '*.h' '*.cc' '*.cpp' | xargs -r clang-format --dry-run -Werror
        ;;
    install)
        echo "=== install + pkg-config ==="
        tests/packaging/check-install.sh
        ;;
    fuzz)
        echo "=== fuzz (bounded) ==="
        if [ -x fuzz/run.sh ]; then
            fuzz/run.sh
        else
            echo "no fuzz targets yet"
        fi
        ;;
    dev | release | asan | tsan | aarch64)
        run_preset "$step"
        ;;
    *)
        echo "test.sh: unknown step '$step'" >&2
        exit 2
        ;;
    esac
done
echo "=== all steps passed: $steps ==="
