#!/usr/bin/env bash
# soak beside its peers in the lab of ../shared/peers (which is read-only here, so it is
# copied to a scratch folder first). Runs soak through its command line only, in the
# lab's scenarios (A idle hold, A15k, A19k, B steady, C blocking server, D max
# throughput), then the lab's summarizer, and prints soak's rows next to the peers'
# published figures (../shared/peers/RESULTS.md).
#   scripts/bench-peers.sh [SCENARIOS="A B C D"]      e.g. "A A15k A19k B C D"
# Set PEERS=1 to (re)measure k6, Artillery, Locust and the floor client in the same run
# (needs their setup: npm, pip and a floor build; about 20 minutes).
# Loopback only; every run is bounded by the lab's own timeouts and killed by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENS="${1:-A B C D}"
lab_src="$(cd ../shared/peers && pwd)"
cargo build --release --quiet
SOAK_BIN="$(pwd)/target/release/soak"
lab="${LAB_DIR:-$(mktemp -d)/peers}"
[ -d "$lab" ] || { cp -r "$lab_src" "$lab"; chmod -R u+w "$lab"; }
cd "$lab"
# Minimal setup for soak's rows: the Node `ws` echo servers and the Rust floor server.
if [ ! -d .tools/node/node_modules/ws ]; then
  mkdir -p .tools/node && (cd .tools/node && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund --silent ws@8.23.0)
fi
if [ ! -x .tools/floor-target/release/floor ]; then
  (cd floor && CARGO_TARGET_DIR=../.tools/floor-target cargo build --release -q)
fi
export NODE_PATH="$lab/.tools/node/node_modules"
if [ "${PEERS:-0}" = 1 ]; then
  ./setup.sh
  TOOLS_TO_RUN="soak floor k6 artillery locust" SOAK_BIN="$SOAK_BIN" ./run_all.sh
else
  for s in $SCENS; do SOAK_BIN="$SOAK_BIN" ./run_soak.sh "$s"; done
  python3 lib/summarize.py >/dev/null
fi
echo
echo "== soak in the lab ($(date -u +%Y-%m-%d), $(nproc) cores) =="
grep -E "^\| (scenario|---|A|A15k|A19k|B|C|D) " results/summary.md | grep -E "scenario|---|soak" || true
echo
echo "peers' figures for comparison: $lab_src/RESULTS.md; soak's raw output: $lab/results/raw/"
