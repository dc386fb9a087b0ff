#!/usr/bin/env bash
# Benchmark (not a test): soak's cost per room delivery. 20 rooms × 50 members × 0.2 msg/s
# against the demo target's room mode (a separate process, so only soak is measured): every
# message goes to its 50 members, the sender included — about 10,000 deliveries a second,
# each timed. Prints soak's CPU-ms per 1,000 deliveries. Traffic stays on 127.0.0.1; both
# processes are bounded in time and killed by PID.
#   scripts/fanout-bench.sh [HOLD_S=60]
set -euo pipefail
cd "$(dirname "$0")/.."
HOLD_S="${1:-60}"
RAMP_S=10

cargo build --release --quiet
BIN=target/release/soak
work=$(mktemp -d)
trap 'kill "$demo_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" mock --demo --demo-rooms --listen 127.0.0.1:0 >"$work/demo.log" &
demo_pid=$!
for _ in $(seq 100); do grep -q listening "$work/demo.log" && break; sleep 0.1; done
url=$(grep -o 'ws://[^ ]*' "$work/demo.log")

printf '[rooms]\nsize = 50\ndeliver = "/message"\ninclude_sender = true\n' >"$work/rooms.toml"
/usr/bin/time -f '%U %S' -o "$work/cpu" \
  timeout $((RAMP_S * 2 + HOLD_S + 60)) "$BIN" --profile "$work/rooms.toml" \
  --url "$url/room-{{room}}" --users 1000 --room-size 50 --rate 0.2/s \
  --message '{"message": "hi {{id}} from {{user}}"}' --correlate /message \
  --ramp-up "${RAMP_S}s" --ramp-down "${RAMP_S}s" --duration "$((RAMP_S * 2 + HOLD_S))s" \
  --probes 0 --quiet --out "$work/results" || true

python3 - "$work" <<'PY'
import glob, json, sys
work = sys.argv[1]
user, system = map(float, open(f"{work}/cpu").read().split()[-2:])
summary = json.load(open(glob.glob(f"{work}/results/*/summary.json")[0]))
f = summary["fanout"]
cpu_ms = (user + system) * 1000
print(f"deliveries              {f['delivered']} of {f['expected']} expected (reach {f['reach']:.4f}, lost {f['lost']})")
print(f"fan-out p50 / p99       {f['fanout_ms']['p50']} / {f['fanout_ms']['p99']} ms")
print(f"messages sent           {summary['totals']['sent']}")
print(f"soak CPU                {cpu_ms:.0f} ms user+sys over the run")
print(f"CPU-ms per 1,000 deliveries (whole run, ramps included): {cpu_ms / f['delivered'] * 1000:.1f}")
PY
