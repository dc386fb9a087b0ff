#!/usr/bin/env bash
# Renders report.html of three runs in headless Chromium, so a person can check them by
# looking: a demo run (streamed replies), a leak run (a target that keeps 20 KB per
# message) and a blocking-check run (a target that blocks 300 ms every 3 s).
#   scripts/report-screenshots.sh [OUT_DIR]     (default: docs/screenshots)
# Needs a release build (cargo build --release) and Debian's chromium. About 1.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
mkdir -p "$out"
soak=target/release/soak
[ -x "$soak" ] || { echo "build first: cargo build --release" >&2; exit 2; }
runs=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port=$(free_port)
"$soak" mock --demo --demo-stream 5 --demo-gap 30ms --listen "127.0.0.1:$port" >/dev/null &
demo=$!
trap 'kill $demo 2>/dev/null || true; rm -rf "$runs"' EXIT
"$soak" --url "ws://127.0.0.1:$port/ws" --complete '/done == true' --users 20 --rate 2/s \
  --duration 30s --ramp-up 5s --ramp-down 5s --out "$runs/demo" --quiet || true
kill $demo

port=$(free_port)
"$soak" --url "ws://127.0.0.1:$port/ws" --users 10 --rate 10/s --duration 40s --ramp-up 5s \
  --ramp-down 5s --baseline 5s --cooldown 5s --sample-interval 200ms --probes 0 \
  --target-cmd "$soak mock --demo --listen 127.0.0.1:$port --demo-leak-per-message 20000" \
  --gate 'memory != leak' --out "$runs/leak" --quiet || true

port=$(free_port)
"$soak" mock --demo --demo-block-for 300ms --demo-block-every 3s --listen "127.0.0.1:$port" >/dev/null &
demo=$!
"$soak" --profile blocking-check --url "ws://127.0.0.1:$port/ws" --duration 30s --out "$runs/blocking" --quiet || true
kill $demo

for run in demo leak blocking; do
  scripts/screenshot-report.sh "$(readlink -f "$runs/$run/latest")" "$out/report-$run.png"
done
