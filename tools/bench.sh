#!/usr/bin/env bash
# Benchmarks the real vstor.sys under storemu (cargo make bench). A report,
# not a pass/fail timing:
#   1. vstor-bench: builds the C peer (crates/vstor-bench/cpeer, mingw-w64),
#      checks it under storemu run, and reports vstor.sys and the peer side
#      by side: instructions per SRB inside each image (callgrind), outside
#      the copy and in total, and wall time per SRB, with their ratios;
#      adapter start time for 64 MiB and 1 GiB; image sizes and opt-level;
#   2. tools/bench-nbd.sh: fio over NBD against storemu serve and nbdkit memory.
# Writes target/bench-report/report.md (both parts), ratios.svg and
# fio-ratios.svg, and prints their paths.
# Usage: tools/bench.sh [--no-fio]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fio=1
while [ $# -gt 0 ]; do
    case "$1" in
        --no-fio) fio=0; shift ;;
        *) echo "bench: unknown argument '$1' (expected --no-fio)" >&2; exit 64 ;;
    esac
done
out="$root/target/bench-report"

# shellcheck source=tools/cross-env.sh
source "$root/tools/cross-env.sh"
# valgrind counts instructions; llvm-symbolizer (package llvm) names the
# image's code from its PDB; mingw-w64 builds the C peer.
vstor_apt_install valgrind llvm gcc-mingw-w64-x86-64

bash "$root/tools/build-driver.sh"
cargo build --release --package vstor-bench --package storport-emu --bin vstor-bench --bin storemu
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
"$target_dir/release/vstor-bench" --sys "$root/target/vstor/vstor.sys" --inf "$root/inf/vstor.inf" \
    run --out "$out"
if [ "$fio" = 1 ]; then
    STOREMU="$target_dir/release/storemu" bash "$root/tools/bench-nbd.sh" --out "$out"
    printf '\n' >>"$out/report.md"
    cat "$out/fio.md" >>"$out/report.md"
fi
echo "bench: report in $out/report.md (charts: $out/ratios.svg, $out/fio-ratios.svg)"
