#!/bin/sh
# The packager's sequence: configure, build, install to a prefix, then build a program
# against the installed library with pkg-config alone and run it.
set -eu
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DARK_BUILD_TESTS=OFF \
    -DARK_BUILD_BENCH=OFF >/dev/null
cmake --build "$work/build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null
pcdir=$(dirname "$(find "$work/prefix" -name arkenstone.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir"
for program in tests/packaging/*.c; do
    name=$(basename "$program" .c)
    gcc -Wall -Werror "$program" -o "$work/$name" $(pkg-config --cflags --libs arkenstone)
    LD_LIBRARY_PATH="$(pkg-config --variable=libdir arkenstone)" "$work/$name"
done
# Public headers must compile as C++ too.
for header in $(cd "$work/prefix/include" && find . -name '*.h' | sort); do
    printf '#include "%s"\nint main(){return 0;}\n' "$header" > "$work/cxx.cc"
    g++ -fsyntax-only -Wall -Werror -I"$work/prefix/include" "$work/cxx.cc"
done
echo "install check passed"
