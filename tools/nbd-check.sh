#!/usr/bin/env bash
# The NBD check: vstor.sys served by `storemu serve` on loopback, and the
# clients people use against every LUN:
#   1. qemu-io pattern writes and verified reads (its output is searched:
#      qemu-io exits 0 even when a pattern check fails), zero writes and
#      discards read back as zeroes;
#   2. qemu-img convert of a random 64 MiB image into the export and back,
#      compared byte for byte;
#   3. a short fio verify job (fio's nbd engine, libnbd).
# Usage: tools/nbd-check.sh [--disks N]   (default 2)
# Environment: STOREMU (storemu binary; default: built with cargo),
#              VSTOR_PACKAGE_DIR (vstor.sys + vstor.inf; default target/vstor).
# Installs qemu-utils and fio with apt when they are missing (as root, or
# through passwordless sudo as on CI runners).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DISKS=2
while [ $# -gt 0 ]; do
    case "$1" in
        --disks) DISKS="$2"; shift 2 ;;
        *) echo "nbd-check: unknown argument $1; usage: tools/nbd-check.sh [--disks N]" >&2; exit 64 ;;
    esac
done

note() { printf 'nbd-check: %s\n' "$*" >&2; }

# shellcheck source=tools/apt.sh
source "$ROOT/tools/apt.sh"
vstor_apt_install qemu-utils fio || exit 1

PACKAGE_DIR=${VSTOR_PACKAGE_DIR:-$ROOT/target/vstor}
if [ ! -f "$PACKAGE_DIR/vstor.sys" ]; then
    bash tools/build-driver.sh >&2
fi
if [ -z "${STOREMU:-}" ]; then
    cargo build --quiet --package storport-emu --bin storemu >&2
    STOREMU=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/storemu
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$STOREMU" serve "$PACKAGE_DIR/vstor.sys" --inf "$PACKAGE_DIR/vstor.inf" \
    --set "DiskCount=dword:$DISKS" --nbd 127.0.0.1:0 --no-iscsi >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q '^listening nbd ' "$WORK/serve.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; note "storemu serve exited before listening"; exit 1; }
    sleep 0.1
done
ADDRESS=$(sed -n 's/^listening nbd //p' "$WORK/serve.log")
[ -n "$ADDRESS" ] || { cat "$WORK/serve.log" >&2; note "storemu serve did not listen within 30 s"; exit 1; }
mapfile -t EXPORTS < <(sed -n 's/^export \(lun[0-9]*\) .* type 0 .*/\1/p' "$WORK/serve.log")
note "serving ${#EXPORTS[@]} export(s) on $ADDRESS: ${EXPORTS[*]}"
[ ${#EXPORTS[@]} -eq "$DISKS" ] || { note "expected $DISKS disk exports"; exit 1; }

FAILED=0
pass() { printf '  PASS %-8s %s\n' "$1" "$2"; }
fail() { printf '  FAIL %-8s %s\n' "$1" "$2"; FAILED=$((FAILED + 1)); }

# qemu-io prints "Pattern verification failed at offset N" and still exits 0.
qemu_io_check() {
    local export=$1 url=$2 out
    out=$(timeout 120 qemu-io -f raw \
        -c "write -P 0x5a 0 4M" -c "read -P 0x5a 0 4M" \
        -c "write -P 0xa5 60M 4M" -c "read -P 0xa5 60M 4M" \
        -c "write -P 0x3c 1000448 3000" -c "read -P 0x3c 1000448 3000" \
        -c "write -z 8M 1M" -c "read -P 0 8M 1M" \
        -c "write -P 0x11 16M 1M" -c "discard 16M 1M" -c "read -P 0 16M 1M" \
        -c "aio_write -P 0x77 20M 512k" -c "aio_write -P 0x78 21M 512k" -c "aio_flush" \
        -c "read -P 0x77 20M 512k" -c "read -P 0x78 21M 512k" \
        -c "flush" "$url" 2>&1) || { fail qemu-io "$export: qemu-io exited with an error: $out"; return; }
    if grep -qiE 'verification failed|error|failed' <<<"$out"; then
        fail qemu-io "$export: $(grep -iE 'verification failed|error|failed' <<<"$out" | head -3 | tr '\n' ' ')"
    elif [ "$(grep -c '^read ' <<<"$out")" -ne 7 ] || [ "$(grep -c '^wrote ' <<<"$out")" -ne 7 ]; then
        fail qemu-io "$export: expected 7 reads and 7 writes in: $out"
    else
        pass qemu-io "$export: 7 pattern writes, 7 verified reads (with an unaligned 3000-byte one), write zeroes, discard, aio"
    fi
}

convert_check() {
    local export=$1 url=$2 size
    size=$(timeout 60 qemu-img info --output=json "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
    head -c "$size" /dev/urandom >"$WORK/in.raw"
    if timeout 300 qemu-img convert -n -f raw -O raw "$WORK/in.raw" "$url" \
        && timeout 300 qemu-img convert -f raw -O raw "$url" "$WORK/out.raw" \
        && cmp -s "$WORK/in.raw" "$WORK/out.raw"; then
        pass convert "$export: $((size >> 20)) MiB of random data in and out, identical"
    else
        fail convert "$export: the image read back differs or qemu-img failed"
    fi
    rm -f "$WORK/in.raw" "$WORK/out.raw"
}

fio_check() {
    local export=$1 url=$2 out
    if out=$(cd "$WORK" && timeout 300 fio --name=verify --ioengine=nbd --uri="$url" --rw=randwrite --bs=4k \
        --size=32M --io_size=16M --iodepth=8 --verify=crc32c --verify_fatal=1 --do_verify=1 \
        --randrepeat=0 --verify_state_save=0 --output-format=terse 2>&1); then
        if grep -qiE 'verify|bad|error' <<<"$(grep -v '^3;' <<<"$out")"; then
            fail fio "$export: $out"
        else
            pass fio "$export: 16 MiB of 4 KiB random writes at iodepth 8, crc32c verified"
        fi
    else
        fail fio "$export: fio failed: $(tail -5 <<<"$out" | tr '\n' ' ')"
    fi
}

for export in "${EXPORTS[@]}"; do
    url="nbd://$ADDRESS/$export"
    qemu_io_check "$export" "$url"
    convert_check "$export" "$url"
    fio_check "$export" "$url"
done

kill -TERM "$SERVER_PID"
STATUS=0
wait "$SERVER_PID" || STATUS=$?
SERVER_PID=""
if [ "$STATUS" -ne 0 ] || ! grep -q '^outcome: 0 finding(s)' "$WORK/serve.log"; then
    sed -n '/^stopping/,$p' "$WORK/serve.log"
    fail storemu "the server stopped with status $STATUS or reported findings"
else
    pass storemu "stopped on SIGTERM with no findings"
fi

if [ "$FAILED" -ne 0 ]; then
    note "$FAILED check(s) failed"
    exit 1
fi
note "all checks passed on ${#EXPORTS[@]} LUN(s)"
