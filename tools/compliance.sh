#!/usr/bin/env bash
# The iSCSI compliance run: libiscsi's iscsi-test-cu against vstor.sys served
# by `storemu serve` and, as the reference, against Linux's user-space target
# tgt with a 64 MiB LUN, under the same conditions (destructive tests on,
# a second initiator name and the multipath URL, one process per suite,
# since one process leaks state between suites in libiscsi 1.19).
#
# Prints pass / skip / fail per suite and in total for both targets, side
# by side. Every vstor failure or skip must be listed, with its reason, in
# tests/compliance/expected.toml; the run fails on any vstor failure that is
# not listed there, on a listed one that now passes (stale entry), and on
# any unlisted skip.
#
# Usage: tools/compliance.sh [--quick] [--no-tgt] [--suites "A B ..."] [--record FILE]
#   --quick   only the suites CI runs (read/write/verify/capacity/inquiry/mode/unmap)
#   --no-tgt  skip the tgt reference run
#   --record  also write vstor's per-test results ("suite test result why") to FILE
# Environment: STOREMU (storemu binary; default: built with cargo),
#              VSTOR_PACKAGE_DIR (vstor.sys + vstor.inf; default target/vstor).
# Installs libiscsi-bin and tgt with apt when missing (as root, or through
# passwordless sudo as on CI runners).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=0
TGT=1
SUITES=""
RECORD=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --no-tgt) TGT=0; shift ;;
        --suites) SUITES="$2"; shift 2 ;;
        --record) RECORD="$2"; shift 2 ;;
        *) echo "compliance: unknown argument $1; usage: tools/compliance.sh [--quick] [--no-tgt] [--suites \"A B\"]" >&2; exit 64 ;;
    esac
done

note() { printf 'compliance: %s\n' "$*" >&2; }

# shellcheck source=tools/apt.sh
source "$ROOT/tools/apt.sh"
vstor_apt_install libiscsi-bin || exit 1
[ "$TGT" -eq 1 ] && { vstor_apt_install tgt || exit 1; }

PACKAGE_DIR=${VSTOR_PACKAGE_DIR:-$ROOT/target/vstor}
[ -f "$PACKAGE_DIR/vstor.sys" ] || bash tools/build-driver.sh >&2
if [ -z "${STOREMU:-}" ]; then
    cargo build --quiet --package storport-emu --bin storemu >&2
    STOREMU=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/storemu
fi
EXPECTED=$ROOT/tests/compliance/expected.toml

WORK=$(mktemp -d)
SERVER_PID=""
TGTD_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
    if [ -n "$TGTD_PID" ]; then
        tgtadm -C "$CONTROL_PORT" --mode system --op delete --force >/dev/null 2>&1 || true
        for _ in $(seq 1 20); do kill -0 "$TGTD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$TGTD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$SUITES" ]; then
    if [ "$QUICK" -eq 1 ]; then
        SUITES="Read6 Read10 Read12 Read16 Write10 Write12 Write16 Verify10 Verify12 Verify16 \
ReadCapacity10 ReadCapacity16 Inquiry ModeSense6 Unmap WriteSame10 WriteSame16 TestUnitReady \
iSCSIResiduals iSCSIcmdsn iSCSITMF"
    else
        SUITES=$(iscsi-test-cu -l | sed -n 's/^ALL\.\([A-Za-z0-9]*\)$/\1/p' | tr '\n' ' ')
    fi
fi

# Runs every suite against URL, one process each; writes "suite test result" lines.
run_suites() {
    local url=$1 out=$2 suite log
    : >"$out"
    for suite in $SUITES; do
        log="$WORK/$(basename "$out").$suite.log"
        timeout 300 iscsi-test-cu --dataloss --test "ALL.$suite" "$url" "$url" >"$log" 2>&1 || true
        python3 - "$suite" "$log" >>"$out" <<'PY'
import re, sys
suite, path = sys.argv[1], sys.argv[2]
text = open(path, errors="replace").read()
# A test's own output runs from "Test: NAME ..." to its result word, which
# CUnit writes right after the "..." or at the start of a line; what follows it
# (even on that line) is the fixture's teardown. Log lines such as
# "[FAILED] RESERVE6 command: ..."
# (a step the test retries) are not the result.
tests = re.findall(
    r"^\s*Test: (\S+) \.\.\.((?:[^\n]*\n)*?)[ \t]*(passed|FAILED)\b", text, flags=re.M
)
for name, body, word in tests:
    if word == "FAILED":
        result = "fail"
    elif "[SKIPPED]" in body:
        result = "skip"
    else:
        result = "pass"
    why = re.findall(r"\[(?:SKIPPED|FAILED)\]\s*(.*)", body)
    print(f"{suite} {name} {result} {why[0].strip() if why else ''}")
# A test that started but never reported (the process died) failed.
started = re.findall(r"^\s*Test: (\S+) \.\.\.", text, flags=re.M)
for name in started[len(tests):]:
    print(f"{suite} {name} fail the test did not finish (iscsi-test-cu exited)")
if not started:
    print(f"{suite} (suite) fail")
PY
    done
}

# vstor under storemu.
# Four target ports: each session (the first and second initiator, the multipath
# URL) gets a port, so vstor keeps their reservations and unit attentions apart.
"$STOREMU" serve "$PACKAGE_DIR/vstor.sys" --inf "$PACKAGE_DIR/vstor.inf" \
    --set TargetPorts=dword:4 \
    --iscsi 127.0.0.1:0 --no-nbd --log >"$WORK/serve.log" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q '^listening iscsi ' "$WORK/serve.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; note "storemu serve exited before listening"; exit 1; }
    sleep 0.1
done
read -r _ _ VSTOR_ADDRESS _ VSTOR_IQN < <(grep '^listening iscsi ' "$WORK/serve.log")
[ -n "${VSTOR_IQN:-}" ] || { cat "$WORK/serve.log" >&2; note "storemu serve did not listen within 30 s"; exit 1; }
note "vstor: $VSTOR_IQN at $VSTOR_ADDRESS"
run_suites "iscsi://$VSTOR_ADDRESS/$VSTOR_IQN/0" "$WORK/vstor.results"
[ -n "$RECORD" ] && cp "$WORK/vstor.results" "$RECORD"
kill -TERM "$SERVER_PID"
SERVE_STATUS=0
wait "$SERVER_PID" || SERVE_STATUS=$?
SERVER_PID=""

# tgt with a 64 MiB LUN (LUN 0 of a tgt target is its controller).
if [ "$TGT" -eq 1 ]; then
    TGT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    CONTROL_PORT=$((TGT_PORT % 1000 + 20000))
    truncate -s 64M "$WORK/tgt.img"
    tgtd -f -C "$CONTROL_PORT" --iscsi "portal=127.0.0.1:$TGT_PORT" >"$WORK/tgtd.log" 2>&1 &
    TGTD_PID=$!
    disown "$TGTD_PID"
    TGT_IQN=iqn.2026-11.org.storemu:tgt-reference
    for _ in $(seq 1 100); do
        tgtadm -C "$CONTROL_PORT" --lld iscsi --mode target --op show >/dev/null 2>&1 && break
        sleep 0.1
    done
    tgtadm -C "$CONTROL_PORT" --lld iscsi --mode target --op new --tid 1 --targetname "$TGT_IQN"
    tgtadm -C "$CONTROL_PORT" --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$WORK/tgt.img"
    tgtadm -C "$CONTROL_PORT" --lld iscsi --mode logicalunit --op update --tid 1 --lun 1 --params thin_provisioning=1 || true
    tgtadm -C "$CONTROL_PORT" --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
    note "tgt: $TGT_IQN at 127.0.0.1:$TGT_PORT"
    run_suites "iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1" "$WORK/tgt.results"
fi

STATUS=0
python3 - "$WORK/vstor.results" "$WORK/tgt.results" "$EXPECTED" "$TGT" <<'PY' || STATUS=$?
import sys, os, re
vstor_path, tgt_path, expected_path, tgt_on = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"

def load(path):
    results = {}
    if path and os.path.exists(path):
        for line in open(path):
            suite, test, result = line.split()[:3]
            results[(suite, test)] = result
    return results

# expected.toml: [[known]] suite = "...", test = "...", result = "skip"|"fail", reason = "..."
known = {}
if os.path.exists(expected_path):
    entry = {}
    def flush():
        if entry:
            known[(entry.get("suite"), entry.get("test"))] = (entry.get("result"), entry.get("reason", ""))
    for raw in open(expected_path):
        line = raw.strip()
        if line == "[[known]]":
            flush(); entry = {}
        else:
            m = re.match(r'(\w+)\s*=\s*"(.*)"\s*$', line)
            if m:
                entry[m.group(1)] = m.group(2)
    flush()

vstor, tgt = load(vstor_path), load(tgt_path if tgt_on else None)
suites = []
for suite, _ in list(vstor) + list(tgt):
    if suite not in suites:
        suites.append(suite)

def counts(results, suite=None):
    c = {"pass": 0, "skip": 0, "fail": 0}
    for (s, _), r in results.items():
        if suite is None or s == suite:
            c[r] += 1
    return c

print(f"{'suite':<28} {'vstor pass/skip/fail':>22} {'tgt pass/skip/fail':>22}")
for suite in suites:
    v, t = counts(vstor, suite), counts(tgt, suite)
    tcol = f"{t['pass']}/{t['skip']}/{t['fail']}" if tgt_on else "-"
    print(f"{suite:<28} {v['pass']:>10}/{v['skip']}/{v['fail']:<9} {tcol:>22}")
v, t = counts(vstor), counts(tgt)
print(f"{'TOTAL':<28} {v['pass']:>10}/{v['skip']}/{v['fail']:<9} " + (f"{t['pass']}/{t['skip']}/{t['fail']}".rjust(22) if tgt_on else "-".rjust(22)))

problems = []
for key, result in sorted(vstor.items()):
    if result == "pass":
        if key in known:
            problems.append(f"stale entry: {key[0]}.{key[1]} passes now but is listed as {known[key][0]} in tests/compliance/expected.toml")
        continue
    if key not in known:
        problems.append(f"unlisted {result}: {key[0]}.{key[1]} (fix it in vstor or list it with a reason in tests/compliance/expected.toml)")
    elif known[key][0] != result:
        problems.append(f"{key[0]}.{key[1]} is listed as {known[key][0]} but was {result}")
for p in problems:
    print("!! " + p)
print(f"vstor: {v['pass']} pass, {v['skip']} skip, {v['fail']} fail" + (f"; tgt: {t['pass']} pass, {t['skip']} skip, {t['fail']} fail" if tgt_on else ""))
# Listed failures are known (each with its reason); anything else fails the run.
sys.exit(1 if problems else 0)
PY
if [ "$STATUS" -ne 0 ] && grep -q 'connection closed' "$WORK/serve.err"; then
    note "connections storemu closed on protocol errors (last 10):"
    grep 'connection closed' "$WORK/serve.err" | tail -10 >&2
fi
if [ "$SERVE_STATUS" -ne 0 ] || ! grep -q '^outcome: 0 finding(s)' "$WORK/serve.log"; then
    sed -n '/^stopping/,$p' "$WORK/serve.log"
    note "storemu serve stopped with status $SERVE_STATUS or reported findings"
    STATUS=1
fi
exit "$STATUS"
