#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ for a bounded time each.
#
#   bash fuzz/run.sh SECONDS [TARGET...]     (default: every target)
#
# Works on the stable toolchain: cargo-fuzz passes -Z flags to rustc, which
# RUSTC_BOOTSTRAP=1 allows. cargo-fuzz is installed if missing. Sanitizers are
# off (-s none): vstor is safe Rust, and the storemu targets run driver code
# under the emulator's own signal handling, which AddressSanitizer would
# fight. New inputs go to target/fuzz-corpus/TARGET; the checked-in seeds in
# fuzz/corpus/TARGET stay as they are. A crash fails the script and leaves the
# input in fuzz/artifacts/TARGET/ (turn it into a regression test).
set -euo pipefail

seconds="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(scsi srb registry inf iscsi_pdu)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if [ ! -r "${VSTOR_SYS:-$root/target/vstor/vstor.sys}" ]; then
    echo "fuzz: vstor.sys is missing; building it with tools/build-driver.sh"
    bash "$root/tools/build-driver.sh"
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${VSTOR_FUZZ_TARGET_DIR:-$root/target/fuzz}"
cd "$here"
# Build once, then run the binaries themselves, so a source edit during the
# run cannot trigger a rebuild half-way.
cargo fuzz build --sanitizer none
host="$(rustc -vV | sed -n 's/^host: //p')"
bin="$CARGO_TARGET_DIR/$host/release"

summary=()
for target in "${targets[@]}"; do
    scratch="$root/target/fuzz-corpus/$target"
    mkdir -p "$scratch" "$here/artifacts/$target"
    log="$root/target/fuzz-corpus/$target.log"
    echo "fuzz: $target for ${seconds} s"
    if ! "$bin/$target" -artifact_prefix="$here/artifacts/$target/" \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
        "$scratch" "corpus/$target" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/ and the log in $log" >&2
        exit 1
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    cov="$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)"
    corpus="$(find "$scratch" "corpus/$target" -type f | wc -l)"
    summary+=("fuzz $target: ${runs:-?} executions in ${seconds} s, ${cov:-cov: ?}, corpus ${corpus} inputs")
done
printf '%s\n' "${summary[@]}"
