#!/usr/bin/env bash
# soak beside its peers in the lab of ../shared/peers (which is read-only here, so it is
# copied to a scratch folder first). Runs soak through its command line only, in the
# lab's scenarios (A idle hold, A15k, A19k, B steady, C blocking server, D max
# throughput), then the lab's summarizer, and prints soak's rows next to the peers'
# published figures (../shared/peers/RESULTS.md).
#   scripts/bench-peers.sh [SCENARIOS="A B C D"]      e.g. "A A15k A19k B C C-late D"
# C-late is C with soak started 1.5 s after the server instead of at once. The lab's server
# blocks first 10 s after it starts and soak's 60 s window starts within ~0.3 s of it, so
# the window ends inside the 6th block and holds ~5.3 blocks, not the 6 the open-model truth
# (and the slower-starting peers' windows) hold. The delay moves the window by 1.5 s; soak's
# flags and measurement are the same. Its figures are printed apart, beside the truth.
# Ends with scripts/peers-goals.py: each goal of the scale-and-speed issue checked on soak's
# rows (A/A15k/A19k KiB per connection, B cost, C against the truth, D against k6, no dropped
# samples), exit 1 if one is missed.
# Set PEERS=1 to (re)measure k6, Artillery, Locust and the floor client in the same run
# (needs their setup: npm, pip and a floor build; about 20 minutes).
# Loopback only; every run is bounded by the lab's own timeouts and killed by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
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
  for s in $SCENS; do
    [ "$s" = C-late ] || SOAK_BIN="$SOAK_BIN" ./run_soak.sh "$s"
  done
  python3 lib/summarize.py >/dev/null
fi
if [[ " $SCENS " == *" C-late "* ]]; then
  late="$lab/.tools/soak-late"
  printf '#!/bin/sh\nsleep 1.5\nexec "%s" "$@"\n' "$SOAK_BIN" >"$late"
  chmod +x "$late"
  rm -rf results/late && mkdir -p results/late
  SOAK_BIN="$late" ./run_soak.sh C late
  mv results/raw/soak_C_*_late* results/late/
  [ -f results/co_truth.json ] || python3 lib/co_truth.py >/dev/null
  python3 - <<'PY'
import glob, json
s = json.load(open(glob.glob("results/late/soak_C_*_late.out/*/summary.json")[0]))
t = json.load(open("results/co_truth.json"))
truth = t["open_model_truth"]
lat = s["latency_ms"]["run"]
blocks = sum(1 for l in open(glob.glob("results/late/*.server.log")[0]) if l.startswith("block"))
print(f"C-late (soak started 1.5 s after the server; {blocks} blocks in the server log): "
      f"p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms; truth p95 {truth['p95']}, p99 {truth['p99']}")
PY
fi
echo
echo "== soak in the lab ($(date -u +%Y-%m-%d), $(nproc) cores) =="
grep -E "^\| (scenario|---|A|A15k|A19k|B|C|D) " results/summary.md | grep -E "scenario|---|soak" || true
echo
echo "peers' figures for comparison: $lab_src/RESULTS.md; soak's raw output: $lab/results/raw/"
echo
echo "== the goals (exit 1 if one is missed) =="
python3 "$repo/scripts/peers-goals.py" "$lab"
