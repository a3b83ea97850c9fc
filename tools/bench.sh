#!/usr/bin/env bash
# Benchmarks the real vstor.sys under storemu (cargo make bench): per-SRB
# instructions (callgrind) and wall time against memcpy, adapter start time,
# image size. Writes target/bench-report/report.md and ratios.svg.
# Usage: tools/bench.sh [--out DIR]   (extra arguments go to vstor-bench run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# shellcheck source=tools/cross-env.sh
source "$root/tools/cross-env.sh"
# valgrind counts instructions; llvm-symbolizer (package llvm) names the
# image's code from its PDB.
vstor_apt_install valgrind llvm

bash "$root/tools/build-driver.sh"
cargo build --release --package vstor-bench
target_dir=${CARGO_TARGET_DIR:-$root/target}
"$target_dir/release/vstor-bench" --sys "$root/target/vstor/vstor.sys" --inf "$root/inf/vstor.inf" run "$@"
