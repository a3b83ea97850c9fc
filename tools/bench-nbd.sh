#!/usr/bin/env bash
# The end-to-end part of `cargo make bench`: fio (ioengine nbd, libnbd) against
# vstor.sys served by `storemu serve --nbd` and against `nbdkit memory` of the
# same size, in the same run and with the same jobs:
#   4k randread and randwrite at iodepth 1 and 32, 1M sequential read (iodepth 4);
# IOPS, bandwidth, p50/p99 completion latency, and the ratio vstor / nbdkit;
# and where vstor's requests spent their time in storemu (serve --stage-times).
# Both disks are filled first (nbdkit's memory plugin is sparse and would
# answer reads of never-written blocks without touching memory).
# Writes DIR/fio.md and DIR/fio-ratios.svg (DIR default target/bench-report).
# Usage: tools/bench-nbd.sh [--out DIR] [--size-mib N] [--runtime S] [--rounds N] [--jobs REGEX]
# (--jobs runs only the jobs whose names match the extended regular expression, e.g. 'qd1$').
# Environment: STOREMU (storemu binary; default: release build with cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/target/bench-report
SIZE_MIB=256
RUNTIME=5
ROUNDS=2
JOBS_MATCH=
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --size-mib) SIZE_MIB=$2; shift 2 ;;
        --runtime) RUNTIME=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --jobs) JOBS_MATCH=$2; shift 2 ;;
        *) echo "bench-nbd: unknown argument '$1' (expected --out DIR, --size-mib N, --runtime S, --rounds N or --jobs REGEX); nothing was measured." >&2; exit 64 ;;
    esac
done
note() { printf 'bench-nbd: %s\n' "$*" >&2; }

# shellcheck source=tools/cross-env.sh
source "$ROOT/tools/cross-env.sh"
vstor_apt_install fio nbdkit python3

[ -f "$ROOT/target/vstor/vstor.sys" ] || bash "$ROOT/tools/build-driver.sh"
if [ -z "${STOREMU:-}" ]; then
    cargo build --quiet --release --package storport-emu --bin storemu >&2
    STOREMU=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/storemu
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

"$STOREMU" serve "$ROOT/target/vstor/vstor.sys" --inf "$ROOT/inf/vstor.inf" \
    --set "DiskCount=dword:1" --set "DiskSizeMiB=dword:$SIZE_MIB" \
    --nbd 127.0.0.1:0 --no-iscsi --log --stage-times >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
    grep -q '^listening nbd ' "$WORK/serve.log" && break
    kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$WORK/serve.log" >&2; note "storemu serve exited before listening"; exit 1; }
    sleep 0.1
done
ADDRESS=$(sed -n 's/^listening nbd //p' "$WORK/serve.log")
[ -n "$ADDRESS" ] || { cat "$WORK/serve.log" >&2; note "storemu serve did not listen within 30 s"; exit 1; }
EXPORT=$(sed -n 's/^export \(lun[0-9]*\) .*/\1/p' "$WORK/serve.log" | head -1)
VSTOR_URI="nbd://$ADDRESS/$EXPORT"

NBDKIT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nbdkit --foreground --ipaddr 127.0.0.1 --port "$NBDKIT_PORT" memory "${SIZE_MIB}M" >"$WORK/nbdkit.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $NBDKIT_PORT), 1).close()" 2>/dev/null && break
    sleep 0.1
done
NBDKIT_URI="nbd://127.0.0.1:$NBDKIT_PORT/"
note "vstor: $VSTOR_URI  nbdkit memory: $NBDKIT_URI  ($SIZE_MIB MiB each)"

JOBS=(
    "4k-randread-qd1 --rw=randread --bs=4k --iodepth=1"
    "4k-randread-qd32 --rw=randread --bs=4k --iodepth=32"
    "4k-randwrite-qd1 --rw=randwrite --bs=4k --iodepth=1"
    "4k-randwrite-qd32 --rw=randwrite --bs=4k --iodepth=32"
    "1m-seqread-qd4 --rw=read --bs=1M --iodepth=4"
)
if [ -n "$JOBS_MATCH" ]; then
    SELECTED=()
    for job in "${JOBS[@]}"; do
        if [[ ${job%% *} =~ $JOBS_MATCH ]]; then SELECTED+=("$job"); fi
    done
    [ ${#SELECTED[@]} -gt 0 ] || { note "--jobs '$JOBS_MATCH' matches none of the jobs (${JOBS[*]%% *}); nothing was measured."; exit 64; }
    JOBS=("${SELECTED[@]}")
fi
uri_of() { if [ "$1" = vstor ]; then echo "$VSTOR_URI"; else echo "$NBDKIT_URI"; fi; }
for target in vstor nbdkit; do
    note "filling $target"
    (cd "$WORK" && fio --name=fill --ioengine=nbd --uri="$(uri_of "$target")" --rw=write --bs=1M \
        --iodepth=4 --size="${SIZE_MIB}M" --output="$WORK/fill-$target.txt") >/dev/null
done
# Each job runs ROUNDS times per server, alternating, and the best round counts:
# the machine is shared, and alternating spreads other load over both servers.
for job in "${JOBS[@]}"; do
    read -r name args <<<"$job"
    for round in $(seq 1 "$ROUNDS"); do
        for target in vstor nbdkit; do
            note "$target: $name, round $round (${RUNTIME} s)"
            stages_before=$(grep -c 'NBD stage times' "$WORK/serve.log" || true)
            # shellcheck disable=SC2086
            (cd "$WORK" && fio --name="$name" --ioengine=nbd --uri="$(uri_of "$target")" $args \
                --size="${SIZE_MIB}M" --time_based --runtime="$RUNTIME" --ramp_time=1 --lat_percentiles=1 \
                --output-format=json --output="$WORK/$target-$name-$round.json") >/dev/null
            if [ "$target" = vstor ]; then
                # The connection's stage times are logged as it closes.
                for _ in $(seq 1 50); do
                    [ "$(grep -c 'NBD stage times' "$WORK/serve.log" || true)" -gt "$stages_before" ] && break
                    sleep 0.1
                done
                grep 'NBD stage times' "$WORK/serve.log" | tail -n +"$((stages_before + 1))" \
                    >"$WORK/stages-$name-$round.txt" || true
            fi
        done
    done
done

mkdir -p "$OUT"
python3 - "$WORK" "$OUT" "$SIZE_MIB" "$RUNTIME" "$ROUNDS" "${JOBS[@]}" <<'EOF'
import glob, json, sys
work, out, size_mib, runtime, rounds, jobs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
names = [job.split()[0] for job in jobs]

def numbers(target, name):
    """The best round (highest IOPS) of `name` against `target`."""
    sides = []
    for path in glob.glob(f"{work}/{target}-{name}-*.json"):
        data = json.load(open(path))["jobs"][0]
        side = data["write"] if "write" in name else data["read"]
        side["stages"] = path.replace(f"/{target}-{name}-", f"/stages-{name}-").replace(".json", ".txt")
        sides.append(side)
    side = max(sides, key=lambda side: side["iops"])
    # Submission to completion (lat), not completion alone (clat): a server that answers
    # while the client's send is still in the kernel would otherwise look faster than it is.
    percentiles = side.get("lat_ns", {}).get("percentile") or side["clat_ns"].get("percentile", {})
    stages = ""
    try:
        logged = open(side["stages"]).read().strip().splitlines()
        stages = logged[-1].split("µs: ", 1)[1] if logged else ""
    except (OSError, IndexError):
        pass
    return {
        "stages": stages,
        "iops": side["iops"],
        "bw": side["bw_bytes"] / 2**20,
        "p50": percentiles.get("50.000000", 0) / 1000,
        "p99": percentiles.get("99.000000", 0) / 1000,
    }

rows = []
lines = [
    f"## fio over NBD: storemu serve (vstor.sys) vs nbdkit memory\n",
    f"One {size_mib} MiB disk each, filled first; fio ioengine=nbd, {runtime} s per job after 1 s ramp, "
    f"best of {rounds} rounds run alternately against the two servers (the machine is shared: expect noise). "
    "p50/p99: request latency, submission to completion (fio lat). Ratio = vstor / nbdkit on IOPS (≥ 1.0 is the goal).\n",
    "| job | vstor IOPS | vstor MiB/s | vstor p50 µs | vstor p99 µs | nbdkit IOPS | nbdkit MiB/s | nbdkit p50 µs | nbdkit p99 µs | ratio | goal ≥ 1.0 |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]
for name in names:
    v, n = numbers("vstor", name), numbers("nbdkit", name)
    ratio = v["iops"] / n["iops"] if n["iops"] else 0
    rows.append((name, ratio))
    lines.append(
        f"| {name} | {v['iops']:.0f} | {v['bw']:.1f} | {v['p50']:.1f} | {v['p99']:.1f} | "
        f"{n['iops']:.0f} | {n['bw']:.1f} | {n['p50']:.1f} | {n['p99']:.1f} | {ratio:.2f}× | "
        f"{'met' if ratio >= 1.0 else 'not met'} |"
    )
lines.append("\n![fio ratios](fio-ratios.svg)\n")
lines.append("Where vstor's requests spent their time inside storemu in that round (`storemu serve "
             "--stage-times`, median/p99 µs): receive = the read that brought the request to the "
             "request ready, port = the block operation, split into bridge (CDB and SRB built, reply "
             "gathered, or written when its data exceeds 32 KiB), gate (port and call gate around HwStartIo), driver (the miniport and the exports "
             "it calls) and completion (the completed SRB to the result); send = operation done to reply "
             "written. Above queue depth 1, send and total count the last reply "
             "of each burst written together; READs and WRITEs of 128 KiB and more (helper threads) are "
             "not timed.\n")
lines.append("| job | stages |")
lines.append("|---|---|")
for name in names:
    lines.append(f"| {name} | {numbers('vstor', name)['stages'] or 'not logged'} |")
lines.append("")
open(f"{out}/fio.md", "w").write("\n".join(lines) + "\n")

width, top, bottom = 120 + 110 * len(rows), 40.0, 260.0
highest = max([1.5] + [r for _, r in rows])
y = lambda v: bottom - (bottom - top) * v / highest
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="320" font-family="sans-serif" font-size="11">',
       '<text x="10" y="20" font-size="14">fio IOPS, storemu serve (vstor.sys) / nbdkit memory (higher is better; dashes: goal 1.0)</text>']
tick = 0.0
while tick <= highest + 1e-9:
    svg.append(f'<line x1="60" x2="{width - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
               f'<text x="50" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}×</text>')
    tick += 0.25
for index, (name, ratio) in enumerate(rows):
    x = 80 + 110 * index
    colour = "#3a7" if ratio >= 1.0 else "#d54"
    svg.append(f'<rect x="{x}" y="{y(ratio):.1f}" width="60" height="{bottom - y(ratio):.1f}" fill="{colour}"/>')
    svg.append(f'<text x="{x + 30}" y="{y(ratio) - 5:.1f}" text-anchor="middle">{ratio:.2f}×</text>')
    svg.append(f'<text x="{x + 30}" y="{bottom + 18}" text-anchor="middle">{name}</text>')
svg.append(f'<line x1="60" x2="{width - 20}" y1="{y(1.0):.1f}" y2="{y(1.0):.1f}" stroke="black" stroke-dasharray="4 3"/>')
svg.append("</svg>")
open(f"{out}/fio-ratios.svg", "w").write("\n".join(svg) + "\n")
print("\n".join(lines))
EOF
note "wrote $OUT/fio.md and $OUT/fio-ratios.svg"
