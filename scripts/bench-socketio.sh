#!/usr/bin/env bash
# soak's Socket.IO transport beside Artillery's Socket.IO engine in one run, against the
# same Socket.IO echo server (tests/clients/sio_chat.js on the socket.io npm package):
# 200 users × 10 acked `echo` events a second for 60 s. Each generator runs under the
# peers lab's measure.py (CPU of its whole process tree from /proc); printed as CPU-ms
# per 1,000 acked events, beside soak's plain-WebSocket B figure from the same run (the
# lab's scenario B: 200 users × 10 msg/s against the lab's Node `ws` echo server).
#   scripts/bench-socketio.sh            (about 5 minutes; exits non-zero when a goal is missed)
# Needs node, tests/clients/node_modules (npm ci) and Artillery 2.0.21 in the lab copy
# (installed on first use). Loopback only; every run is bounded and killed by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
cargo build --release --quiet
SOAK="$repo/target/release/soak"
lab="${LAB_DIR:-$(mktemp -d)/peers}"
[ -d "$lab" ] || { cp -r "$repo/../shared/peers" "$lab"; chmod -R u+w "$lab"; }
mkdir -p "$lab/.tools/node"
if [ ! -x "$lab/.tools/node/node_modules/.bin/artillery" ] || [ ! -d "$lab/.tools/node/node_modules/ws" ]; then
  (cd "$lab/.tools/node" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --ignore-scripts --silent artillery@2.0.21 ws@8.23.0)
fi
[ -d tests/clients/node_modules/socket.io ] || (cd tests/clients && npm ci --no-audit --no-fund --silent)
out="$(mktemp -d)"
measure() { # name -- cmd...
  local name="$1"; shift 2
  python3 "$lab/lib/measure.py" --out "$out/$name.measure.json" --samples "$out/$name.samples.csv" \
    --log "$out/$name.log" --server-pid "$server" --timeout 150 -- "$@" >/dev/null
}
start_server() {
  EXIT_WITH_STDIN=0 node tests/clients/sio_chat.js >"$out/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do grep -q listening "$out/server.log" && break; sleep 0.1; done
  port=$(awk '/listening/ {print $2}' "$out/server.log")
}
stop_server() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap stop_server EXIT

start_server
measure soak-socketio -- "$SOAK" run --url "http://127.0.0.1:$port" --protocol socketio \
  --event echo --auth '{"token": "good-{{user}}"}' --message '{"id": {{id}}, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}' \
  --users 200 --rate 10/s --ramp-up 0s --ramp-down 0s --duration 60s --quiet --out "$out/soak"
stop_server

start_server
cat >"$out/artillery.yml" <<YML
config:
  target: "http://127.0.0.1:$port"
  socketio:
    transports: ["websocket"]
    auth:
      token: "good-1"
  phases:
    - duration: 2
      arrivalCount: 200
scenarios:
  - engine: socketio
    flow:
      - loop:
          - emit:
              channel: "echo"
              data: { "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }
            acknowledge: {}
          - think: "100ms"
        count: 600
YML
ARTILLERY_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 measure artillery-socketio -- \
  "$lab/.tools/node/node_modules/.bin/artillery" run --quiet --output "$out/artillery.json" "$out/artillery.yml"
stop_server

# soak's plain-WebSocket B in the same run, through the lab's own runner.
export NODE_PATH="$lab/.tools/node/node_modules"
(cd "$lab" && SOAK_BIN="$SOAK" ./run_soak.sh B sio-bench >/dev/null)

python3 - "$out" "$lab" <<'PY'
import glob, json, sys
out, lab = sys.argv[1], sys.argv[2]
def cpu(name):
    return json.load(open(f"{out}/{name}.measure.json"))["cpu_total_s"]
s = json.load(open(glob.glob(f"{out}/soak/*/summary.json")[0]))
soak_n = s["totals"]["received"]
a = json.load(open(f"{out}/artillery.json"))["aggregate"]
art_n = a["summaries"]["socketio.response_time"]["count"]
b = json.load(open(glob.glob(f"{lab}/results/raw/soak_B_node_sio-bench.out/*/summary.json")[0]))
b_cpu = json.load(open(f"{lab}/results/raw/soak_B_node_sio-bench.measure.json"))["cpu_total_s"]
# Each generator's achieved rate per user, so a scenario that does not pace as asked is
# seen (Artillery reads `think: 0.1` as about 1 ms, not 100 ms: spell it "100ms").
art_s = max(a["lastCounterAt"] - a["firstCounterAt"], 1) / 1000
rows = [
    ("soak, Socket.IO", cpu("soak-socketio"), soak_n, 60.0, s["latency_ms"]["run"]["p50"], s["latency_ms"]["run"]["p99"]),
    ("Artillery, Socket.IO engine", cpu("artillery-socketio"), art_n, art_s,
     a["summaries"]["socketio.response_time"]["median"], a["summaries"]["socketio.response_time"]["p99"]),
    ("soak, plain WebSocket (B)", b_cpu, b["totals"]["received"], 60.0, b["latency_ms"]["run"]["p50"], b["latency_ms"]["run"]["p99"]),
]
print("| generator | acked events | events/s per user | CPU s | CPU-ms / 1,000 | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|---|")
paced = True
for name, c, n, secs, p50, p99 in rows:
    per_user = n / secs / 200
    paced = paced and abs(per_user - 10) <= 1.5
    print(f"| {name} | {n} | {per_user:.1f} | {c:.2f} | {c * 1e6 / max(n, 1):.1f} | {p50} | {p99} |")
sio, art, plain = (r[1] * 1e6 / max(r[2], 1) for r in rows)
print(f"\nsoak vs Artillery: {art / sio:.1f}x less CPU per event (goal: at least 2x)")
print(f"soak Socket.IO vs its own plain-WebSocket B: {100 * (sio / plain - 1):+.0f} % (goal: within 20 %)")
if not paced:
    sys.exit("a generator did not hold 10 events/s per user: the figures above do not compare")
if art / sio < 2 or sio / plain > 1.2:
    sys.exit("a goal was missed (see above)")
PY
