#!/usr/bin/env bash
# Finds (and, where allowed, installs) the toolchain that cross-builds
# vstor.sys on Linux, and exports the variables tools/build-driver.sh uses:
#   VSTOR_CARGO, VSTOR_RUSTC, VSTOR_BUILD_STD (1 or 0), VSTOR_LINKER.
# Order of preference:
#   1. a rustup toolchain that has the x86_64-pc-windows-msvc target;
#   2. Debian's rustc-web + rust-web-src + cargo-web, with -Z build-std.
# Linker: lld-link 22 — rustup's rust-lld, else Debian's lld-22.
# Safe to source repeatedly; installs only what is missing, and only as root.
set -euo pipefail

VSTOR_TARGET=x86_64-pc-windows-msvc
DEBIAN_PACKAGES_RUST=(rustc-web cargo-web rust-web-src)

vstor_note() { printf 'cross-env: %s\n' "$*" >&2; }

# shellcheck source=tools/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# 1. A rustup toolchain with the Windows target.
VSTOR_BUILD_STD=1
VSTOR_RUSTC=""
VSTOR_CARGO=""
if command -v rustup >/dev/null; then
    for tc in $(rustup toolchain list 2>/dev/null | awk '{print $1}'); do
        sysroot=$(rustup run "$tc" rustc --print sysroot 2>/dev/null) || continue
        if [ -d "$sysroot/lib/rustlib/$VSTOR_TARGET/lib" ]; then
            VSTOR_RUSTC="$sysroot/bin/rustc"
            VSTOR_CARGO="$sysroot/bin/cargo"
            VSTOR_BUILD_STD=0
            vstor_note "using rustup toolchain $tc (has $VSTOR_TARGET)"
            break
        fi
    done
fi

# 2. Debian's matching rustc + library source, building core from source.
if [ -z "$VSTOR_RUSTC" ]; then
    vstor_apt_install "${DEBIAN_PACKAGES_RUST[@]}"
    VSTOR_RUSTC=/usr/bin/rustc
    VSTOR_CARGO=/usr/bin/cargo
    if [ ! -d /usr/lib/rustlib/src/rust/library/core ]; then
        vstor_note "rust-web-src did not provide /usr/lib/rustlib/src/rust/library"
        exit 1
    fi
fi

# Linker: lld-link 22.
VSTOR_LINKER=""
for tc_sysroot in $(command -v rustup >/dev/null && rustup toolchain list 2>/dev/null | awk '{print $1}' | while read -r tc; do rustup run "$tc" rustc --print sysroot 2>/dev/null; done); do
    cand="$tc_sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
    if [ -x "$cand" ] && "$cand" -flavor link --version 2>/dev/null | grep -Eq 'LLD (2[2-9]|[3-9][0-9])\.'; then
        VSTOR_LINKER="$cand"
        break
    fi
done
if [ -z "$VSTOR_LINKER" ]; then
    vstor_apt_install lld-22
    for cand in /usr/bin/lld-link-22 /usr/lib/llvm-22/bin/lld-link; do
        [ -x "$cand" ] && VSTOR_LINKER="$cand" && break
    done
fi
if [ -z "$VSTOR_LINKER" ]; then
    vstor_note "no lld-link 22 found (rustup's rust-lld or Debian's lld-22)"
    exit 1
fi

export VSTOR_TARGET VSTOR_RUSTC VSTOR_CARGO VSTOR_BUILD_STD VSTOR_LINKER
