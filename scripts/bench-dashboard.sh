#!/usr/bin/env bash
# What watching a run costs: the peers lab's scenario B (200 users × 10 msg/s for 60 s
# against its Node `ws` echo server, soak's CPU measured from /proc by the lab) run plain,
# then with --dashboard and --metrics-listen and, for the whole run, 10 browsers' event
# streams (/events) and a 1 s scrape of /metrics; alternated RUNS times (default 3).
# Prints CPU-ms per 1,000 messages for each and their ratio, and dropped_samples.
#   scripts/bench-dashboard.sh            (about 8 minutes)
# Loopback only; every client is bounded by --max-time and the runs by the lab's timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
cargo build --release --quiet
SOAK="$repo/target/release/soak"
lab="${LAB_DIR:-$(mktemp -d)/peers}"
[ -d "$lab" ] || { mkdir -p "$(dirname "$lab")"; cp -r "$repo/../shared/peers" "$lab"; chmod -R u+w "$lab"; }
if [ ! -d "$lab/.tools/node/node_modules/ws" ]; then
  mkdir -p "$lab/.tools/node"
  (cd "$lab/.tools/node" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund --silent ws@8.23.0)
fi
export NODE_PATH="$lab/.tools/node/node_modules"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
watchers() { # dashboard-port metrics-port: 10 event streams and a 1 s scrape, ~70 s at most
  local d="$1" m="$2"
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$d/" && break; sleep 0.05; done
  for _ in $(seq 10); do curl -sN --max-time 70 "http://127.0.0.1:$d/events" >/dev/null || true & done
  for _ in $(seq 70); do curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$m/metrics" || true; sleep 1; done
  wait
}
runs="${RUNS:-3}"
cd "$lab"
for i in $(seq "$runs"); do
  SOAK_BIN="$SOAK" ./run_soak.sh B "plain$i" >/dev/null
  d=$(free_port); m=$(free_port)
  live="$lab/.tools/soak-live"
  printf '#!/bin/sh\nexec "%s" "$@" --dashboard 127.0.0.1:%s --metrics-listen 127.0.0.1:%s\n' "$SOAK" "$d" "$m" >"$live"
  chmod +x "$live"
  watchers "$d" "$m" &
  w=$!
  SOAK_BIN="$live" ./run_soak.sh B "live$i" >/dev/null
  wait "$w" || true
done
python3 lib/summarize.py >/dev/null
python3 - "$runs" <<'PY'
import glob, json, statistics, sys
runs = int(sys.argv[1])
def rows(kind):
    out = []
    for i in range(1, runs + 1):
        r = json.load(open(glob.glob(f"results/runs/soak_B_*_{kind}{i}.json")[0]))
        s = json.load(open(glob.glob(f"results/raw/soak_B_*_{kind}{i}.out/*/summary.json")[0]))
        out.append((r["cpu_ms_per_1000_total"], s["totals"]["dropped_samples"], s["totals"]["sent"]))
    return out
plain, live = rows("plain"), rows("live")
for name, rs in (("plain", plain), ("watched", live)):
    print(f"{name:8} CPU-ms/1k msgs " + "  ".join(f"{c:.1f}" for c, _, _ in rs)
          + f"   median {statistics.median(c for c, _, _ in rs):.1f}"
          + f"   dropped_samples {sum(d for _, d, _ in rs)}   sent {[n for _, _, n in rs]}")
ratio = statistics.median(c for c, _, _ in live) / statistics.median(c for c, _, _ in plain)
print(f"watched / plain = {ratio:.3f} (goal: within 1.05)")
PY
