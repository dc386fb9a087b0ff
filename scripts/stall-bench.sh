#!/usr/bin/env bash
# Benchmark (not a test): the coordinated-omission check. The demo target (a separate
# process, single-threaded event loop) blocks BLOCK_MS every EVERY_MS; soak runs USERS users
# at RATE for DURATION in the open model and reports p95/p99, printed beside the open-model
# truth B · (1 − (1 − q)/f), f = B/E. Traffic stays on 127.0.0.1; processes are killed by PID.
#   scripts/stall-bench.sh [USERS=200] [RATE=10/s] [DURATION_S=60] [BLOCK_MS=1000] [EVERY_MS=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${1:-200}"; RATE="${2:-10/s}"; DURATION_S="${3:-60}"; BLOCK_MS="${4:-1000}"; EVERY_MS="${5:-10000}"

cargo build --release --quiet
BIN=target/release/soak
work=$(mktemp -d)
trap 'kill "$demo_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" mock --demo --listen 127.0.0.1:0 --demo-block-for "${BLOCK_MS}ms" --demo-block-every "${EVERY_MS}ms" >"$work/demo.log" &
demo_pid=$!
for _ in $(seq 100); do grep -q listening "$work/demo.log" && break; sleep 0.1; done
url=$(grep -o 'ws://[^ ]*' "$work/demo.log")

timeout $((DURATION_S + 60)) "$BIN" --url "$url" --users "$USERS" --rate "$RATE" \
  --ramp-up 0s --ramp-down 0s --duration "${DURATION_S}s" --quiet --out "$work/results"

python3 - "$work/results" "$BLOCK_MS" "$EVERY_MS" "$DURATION_S" <<'PY'
import glob, json, math, sys
out, block, every, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = json.load(open(glob.glob(out + "/*/summary.json")[0]))
run = s["latency_ms"]["run"]
def truth(f, q):
    return block * (1 - (1 - q) / f) if q > 1 - f else 0.0
# The demo's blocks start one period after it starts (just before the run), so a run of
# D seconds sees floor((D - 1 ms) / E) whole blocks: the realized fraction can be below B/E.
blocks = math.floor((duration * 1000 - 1) / every)
f_nominal, f_run = block / every, blocks * block / (duration * 1000)
print(f"replies {run['count']}, errors {s['totals']['errors']}, dropped samples {s['totals']['dropped_samples']}")
print(f"blocks in the run: {blocks}; fraction of sends in a block: nominal {f_nominal:.3f}, this run {f_run:.3f}")
print(f"{'':6}{'soak':>10}{'formula (B/E)':>15}{'formula (this run)':>20}")
for q, key in [(0.95, "p95"), (0.99, "p99")]:
    print(f"{key:6}{run[key]:>10.1f}{truth(f_nominal, q):>15.1f}{truth(f_run, q):>20.1f}")
PY
