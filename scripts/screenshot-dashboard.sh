#!/usr/bin/env bash
# Renders the live dashboard of a run in progress to a PNG: a 2-minute soak of the demo
# target leaking 2 KB per message (so the memory chart has a slope to show), photographed
# a minute in by headless Chromium, then ended with Ctrl-C (by its PID).
#   scripts/screenshot-dashboard.sh [OUT.png]        (SOAK_BIN=… to use another build)
# Needs Debian's chromium (apt-get install chromium) and a release build of soak.
set -euo pipefail
cd "$(dirname "$0")/.."
png="${1:-docs/screenshots/dashboard-live.png}"
soak="${SOAK_BIN:-target/release/soak}"
[ -x "$soak" ] || cargo build --release
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$soak" --url "ws://127.0.0.1:$port/ws" \
  --target-cmd "$(realpath "$soak") mock --demo --listen 127.0.0.1:$port --demo-leak-per-message 2000" \
  --users 40 --rate 5/s --duration 2m --ramp-up 15s --ramp-down 15s --baseline 5s --cooldown 5s \
  --probes 2 --dashboard 127.0.0.1:0 --quiet --out "$work/results" 2>"$work/err" >/dev/null &
pid=$!
for _ in $(seq 100); do
  grep -q 'dashboard on' "$work/err" && break
  sleep 0.1
done
url=$(grep -o 'http://[0-9.:]*/' "$work/err" | head -1)
[ -n "$url" ] || { cat "$work/err" >&2; exit 1; }
sleep 60
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --window-size=1040,2600 \
  --screenshot="$(realpath -m "$png")" "$url" 2>/dev/null
echo "wrote $png (from $url mid-run)"
