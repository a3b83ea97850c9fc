#!/usr/bin/env bash
# Installs libclang (Debian's libclang1-14, which bindgen loads at run time,
# and libclang-common-14-dev, clang's own headers such as stddef.h) when
# missing, then runs vstor-abi-check with the arguments given (`--wdk DIR`,
# or WDKContentRoot in the environment). With --deps-only it installs and stops.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tools/apt.sh
source tools/apt.sh
vstor_apt_install libclang1-14 libclang-common-14-dev
[ "${1:-}" = "--deps-only" ] && exit 0
[ "${1:-}" = "--" ] && shift
exec cargo run --locked --quiet --package abi-check --bin vstor-abi-check -- "$@"
