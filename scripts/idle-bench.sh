#!/usr/bin/env bash
# Benchmark (not a test): soak holds N idle connections against the demo target, started as
# a separate process so its memory is not counted, and reports soak's RSS per connection
# and CPU. Traffic stays on 127.0.0.1; both processes are bounded in time and killed by PID.
#   scripts/idle-bench.sh [CONNS=1000] [HOLD_S=30]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS="${1:-1000}"
HOLD_S="${2:-30}"
RAMP_S=5

cargo build --release --quiet
BIN=target/release/soak
work=$(mktemp -d)
trap 'kill "$demo_pid" ${watchdog_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" mock --demo --listen 127.0.0.1:0 >"$work/demo.log" &
demo_pid=$!
for _ in $(seq 100); do grep -q listening "$work/demo.log" && break; sleep 0.1; done
url=$(grep -o 'ws://[^ ]*' "$work/demo.log")

"$BIN" --url "$url" --users "$CONNS" --rate 0/s \
  --ramp-up "${RAMP_S}s" --ramp-down 0s --duration "$((RAMP_S + HOLD_S))s" \
  --quiet --out "$work/results" &
soak_pid=$!
# Watchdog: soak stops by itself; if it did not, kill it by PID well after its planned end.
( sleep $((RAMP_S + HOLD_S + 30)); kill "$soak_pid" 2>/dev/null ) &
watchdog_pid=$!

# Sample soak's resident set every 0.5 s from /proc (VmRSS, kB).
first_kb=""; peak_kb=0
while kill -0 "$soak_pid" 2>/dev/null; do
  kb=$(awk '/^VmRSS/ {print $2}' "/proc/$soak_pid/status" 2>/dev/null || true)
  if [ -n "$kb" ]; then
    [ -z "$first_kb" ] && first_kb=$kb
    [ "$kb" -gt "$peak_kb" ] && peak_kb=$kb
    ticks=$(awk '{print $14 + $15}' "/proc/$soak_pid/stat" 2>/dev/null || echo "${ticks:-0}")
  fi
  sleep 0.5
done
wait "$soak_pid" || { echo "soak failed" >&2; exit 1; }

hz=$(getconf CLK_TCK)
python3 - "$CONNS" "$first_kb" "$peak_kb" "$ticks" "$hz" "$work/results" <<'PY'
import glob, json, sys
conns, first, peak, ticks, hz, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = json.load(open(glob.glob(out + "/*/summary.json")[0]))
opened = s["connects"]["successes"]
print(f"connections opened      {opened} of {conns}")
print(f"soak peak RSS           {peak / 1024:.1f} MiB (first sample {first / 1024:.1f} MiB)")
print(f"RSS per connection      {peak / opened:.1f} KiB (peak / connections)")
print(f"marginal per connection {(peak - first) / opened:.1f} KiB ((peak - first sample) / connections)")
print(f"soak CPU                {ticks / hz * 1000:.0f} ms user+sys over the run")
PY
