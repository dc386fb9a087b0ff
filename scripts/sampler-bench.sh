#!/usr/bin/env bash
# Benchmark (not a test): what the sampler costs. A tree of 10 processes (a shell and nine
# sleepers) is the target; soak samples it at 1 Hz for DURATION_S with one idle user and no
# probes, and the sampler thread's own CPU time is read from /proc. Goal: under 1 % of one
# core. Everything stays local; the processes started here are killed by PID.
#   scripts/sampler-bench.sh [DURATION_S=60]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION_S="${1:-60}"
cargo build --release --quiet
BIN=target/release/soak
work=$(mktemp -d)
sh -c 'for i in 1 2 3 4 5 6 7 8 9; do sleep 600 & done; wait' &
tree_pid=$!
trap 'pkill -P "$tree_pid" 2>/dev/null || true; kill "$tree_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5

"$BIN" --target-pid "$tree_pid" --users 1 --rate 0/s --probes 0 --duration "${DURATION_S}s" \
  --ramp-up 0s --ramp-down 0s --baseline 0s --cooldown 0s --sample-interval 1s --quiet --out "$work/results" &
soak_pid=$!
hz=$(getconf CLK_TCK)
sampler_ticks() {
  for t in /proc/"$soak_pid"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = "soak-sampler" ]; then
      awk '{print $14 + $15}' "$t/stat"; return
    fi
  done
  echo ""
}
first=""; last=""
while kill -0 "$soak_pid" 2>/dev/null; do
  v=$(sampler_ticks)
  [ -n "$v" ] && { [ -z "$first" ] && first=$v; last=$v; }
  sleep 1
done
wait "$soak_pid"
procs=$(python3 -c "import json,glob; s=json.load(open(glob.glob('$work/results/*/summary.json')[0])); print(s['memory']['samples'])")
python3 - "$first" "$last" "$hz" "$DURATION_S" "$procs" <<'PY'
import sys
first, last, hz, dur, samples = int(sys.argv[1] or 0), int(sys.argv[2] or 0), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
cpu_s = (last - first) / hz
print(f"readings of the 10-process tree: {samples}")
print(f"sampler thread CPU: {cpu_s * 1000:.0f} ms over ~{dur:.0f} s = {cpu_s / dur * 100:.2f} % of one core (goal: under 1 %)")
PY
