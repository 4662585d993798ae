#!/bin/sh
# Installs the Debian 12 packages that Arkenstone's build, tests and benchmarks need.
# Idempotent: installs only what is missing, runs `apt-get update` once if anything is.
# Needs root (or sudo). Each package's purpose is listed in README.md.
set -eu

PACKAGES="
build-essential cmake pkg-config ninja-build clang clang-format libclang-rt-14-dev
valgrind gdb
libpcre2-dev libssl-dev openssl libxml2-dev zlib1g-dev
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
libboost-context-dev libuv1-dev libev-dev wrk nginx-light curl
"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "setup: all packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "setup: need root to install:$missing" >&2
    exit 1
fi

echo "setup: installing$missing"
$as_root apt-get update -qq
# nginx-light's post-install would start a server on port 80; the benchmarks start their own.
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends $missing
if command -v systemctl >/dev/null 2>&1; then
    $as_root systemctl disable --now nginx >/dev/null 2>&1 || true
fi
