#!/usr/bin/env bash
# 100,000 concurrent idle WebSocket connections from one 2-core machine (a benchmark, not
# a test). One soak process holds ~19,000 connections (the open-file limit is 20,000) and
# one source address reaches one server port through ~28,000 ephemeral ports, so the plan
# runs as SEGS segment processes (--segment I/N, one shared --start-at) spread over six
# source addresses (--local-ips 127.0.0.2-127.0.0.7), against SERVERS demo targets sharing
# one port (soak mock --reuse-port). Late in the hold it counts the established connections to
# that port (ss) and the segments' RSS; at the end it merges the segments (soak merge) and
# prints the merged figures.
#   scripts/bench-100k.sh            USERS=100000 SEGS=6 SERVERS=6 RAMP=120 HOLD=90
# Loopback only; every process it starts is bounded in time and killed by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS="${USERS:-100000}" SEGS="${SEGS:-6}" SERVERS="${SERVERS:-6}"
RAMP="${RAMP:-120}" HOLD="${HOLD:-90}"
cargo build --release --quiet
soak="$(pwd)/target/release/soak"
out="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
servers=()
segments=()
cleanup() {
  for p in "${segments[@]}" "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for i in $(seq "$SERVERS"); do
  "$soak" mock --listen "127.0.0.1:$port" --reuse-port >"$out/server$i.log" 2>&1 &
  servers+=($!)
done
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
at="$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%SZ)"
for i in $(seq 0 $((SEGS - 1))); do
  "$soak" --url "ws://127.0.0.1:$port/ws" --users "$USERS" --rate 0/s \
    --duration "$((RAMP + HOLD))s" --ramp-up "${RAMP}s" --ramp-down 0s \
    --connect-rate 1500/s --probes 0 --local-ips 127.0.0.2-127.0.0.7 \
    --segment "$i/$SEGS" --start-at "$at" --out "$out/segments" --quiet \
    >"$out/segment$i.log" 2>&1 &
  segments+=($!)
done
# Late in the hold (connects delayed by the loaded ramp have landed): connections
# established to the servers' port, and what the segments hold.
sleep $((5 + RAMP + HOLD - 15))
established="$(ss -Htn state established "( dport = :$port )" | wc -l)"
rss_kb=0
for p in "${segments[@]}"; do
  r="$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
  rss_kb=$((rss_kb + ${r:-0}))
done
server_rss_kb=0
for p in "${servers[@]}"; do
  r="$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
  server_rss_kb=$((server_rss_kb + ${r:-0}))
done
status=0
for p in "${segments[@]}"; do wait "$p" || status=$?; done
segments=()
t0="$(date +%s.%N)"
"$soak" merge "$out/segments" --out "$out/merged" || status=$?
merge_s="$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$(date +%s.%N)")"
python3 - "$out" "$established" "$rss_kb" "$server_rss_kb" "$USERS" "$SEGS" "$merge_s" <<'PY'
import csv, glob, json, sys
out, established, rss_kb, server_rss_kb, users, segs, merge_s = sys.argv[1:]
s = json.load(open(glob.glob(f"{out}/merged/*/summary.json")[0]))
rows = list(csv.DictReader(open(glob.glob(f"{out}/merged/*/timeseries.csv")[0])))
peak = max(int(r["open_connections"]) for r in rows)
c = s["connects"]
print(f"users {users} in {segs} segments: established late in the hold {established}, "
      f"merged peak open {peak}, connects {c['successes']}/{c['attempts']}, "
      f"errors {s['totals']['errors']} {dict((k, v) for k, v in s['errors'].items() if v)}, "
      f"verdict {s['verdict']['result']}")
ct = s["connect_time_ms"]
print(f"connect time p50 {ct['p50']} ms, p99 {ct['p99']} ms, max {ct['max']} ms; "
      f"soak merge took {float(merge_s):.2f} s")
print(f"segments' RSS late in the hold {int(rss_kb) / 1024:.0f} MiB in all = "
      f"{int(rss_kb) / max(int(established), 1):.2f} KiB per connection; "
      f"servers {int(server_rss_kb) / 1024:.0f} MiB; results in {out}")
PY
exit "$status"
