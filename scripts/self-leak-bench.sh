#!/usr/bin/env bash
# Benchmark (not a test): is soak's own memory bounded over a long run? 1,000 users at
# 1 msg/s against a Rust echo server in its own process (the lab's floor server when
# LAB_DIR holds a built one, else soak's demo target), soak sampling itself. Prints the
# verdict soak's leak analysis gives on its own RSS, with the slope after warm-up; exit 1
# unless it is `none` or `plateau` with growth under 1 MB/h.
#   scripts/self-leak-bench.sh [MINUTES=60] [USERS=1000]
# Loopback only; both processes are bounded in time and killed by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-60}"
USERS="${2:-1000}"
cargo build --release --quiet
BIN=target/release/soak
work=$(mktemp -d)
trap 'kill "$server_pid" ${watchdog_pid:-} 2>/dev/null || true' EXIT

floor="${LAB_DIR:-/nonexistent}/.tools/floor-target/release/floor"
if [ -x "$floor" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$floor" server "$port" >"$work/server.log" 2>&1 &
  server_pid=$!
  url="ws://127.0.0.1:$port"
  for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
else
  "$BIN" mock --demo --listen 127.0.0.1:0 >"$work/server.log" &
  server_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
  url=$(grep -o 'ws://[^ ]*' "$work/server.log")
fi
echo "server: $(head -1 "$work/server.log"); results in $work/results"

"$BIN" --url "$url" --users "$USERS" --rate 1/s --ramp-up 60s --ramp-down 60s \
  --duration "${MINUTES}m" --quiet --out "$work/results" &
soak_pid=$!
( sleep $((MINUTES * 60 + 120)); kill "$soak_pid" 2>/dev/null ) &
watchdog_pid=$!
wait "$soak_pid" || true

python3 - "$work/results" <<'PY'
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/summary.json")[0]))
t, m = s["totals"], s["tester"]["memory"]
lat = s["latency_ms"]["run"]
print(f"messages sent {t['sent']}, received {t['received']}, errors {sum(s['errors'].values()) if isinstance(s['errors'], dict) else s['errors']}")
print(f"latency p50 {lat['p50']} ms, p99 {lat['p99']} ms")
print(f"soak's own memory: verdict {m['verdict']}, slope {m['slope_mb_per_hour']} MB/h "
      f"(95 % band {m['slope_ci_mb_per_hour']}), peak {m['peak_mb']} MB, warm-up {m['warmup_s']} s")
print(f"reason: {m['reason']}")
# The goal: soak's own leak analysis finds no leak, and the growth is under 1 MB/h.
ok = m["verdict"] in ("none", "plateau") and (m["slope_mb_per_hour"] or 0) < 1.0
print("PASS" if ok else "FAIL", "(goal: verdict none or plateau, slope < 1 MB/h)")
sys.exit(0 if ok else 1)
PY
