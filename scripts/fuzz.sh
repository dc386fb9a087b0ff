#!/usr/bin/env bash
# Fuzzing, not CI: the property tests with many more cases, then the mocks (LLM and
# Telegram, one `soak mock` process) against a random and hostile request generator.
#   scripts/fuzz.sh [MINUTES] [CASES]      (defaults: 5 minutes, 20000 cases per property)
# Prints inputs tried, panics, unasked-for 5xx answers and the mock's peak RSS; exit 1 on
# a panic, a 5xx, a dead mock or a peak over 100 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-5}"
cases="${2:-20000}"

echo "== property tests, $cases cases each"
PROPTEST_CASES="$cases" cargo test --quiet --test main props 2>&1 | grep -E "^test result|panicked|FAILED" || true
PROPTEST_CASES="$cases" cargo test --quiet -p soak-mocks any_ 2>&1 | grep -E "^test result|panicked|FAILED" || true
props=$(grep -c '^    fn ' tests/props.rs)
echo "property inputs tried: $(( (props + 2) * cases )) ($((props + 2)) properties × $cases)"

echo "== mocks against random requests for $minutes min"
cargo build --release --quiet
log=$(mktemp)
# No latency: the point is many inputs, not realistic replies.
printf '[llm]\nttft_ms = { dist = "fixed", value = 0 }\nitl_ms = { dist = "fixed", value = 0 }\n' >"$log.toml"
target/release/soak mock --llm --telegram --config "$log.toml" --listen 127.0.0.1:0 >"$log.out" 2>"$log" &
mock=$!
trap 'kill $mock 2>/dev/null || true; rm -f "$log" "$log.out" "$log.toml"' EXIT
for _ in $(seq 50); do grep -q TELEGRAM_API_URL "$log.out" 2>/dev/null && grep -q OPENAI_BASE_URL "$log.out" && break; sleep 0.1; done
llm=$(grep -o 'OPENAI_BASE_URL=http://[^/ ]*' "$log.out" | cut -d/ -f3)
tg=$(grep -o 'TELEGRAM_API_URL=http://[^ ]*' "$log.out" | cut -d/ -f3)
status=0
python3 scripts/fuzz-mocks.py "$llm" "$tg" "$mock" "$((minutes * 60))" || status=1
if grep -q panicked "$log"; then echo "PANIC in the mock:"; grep -A3 panicked "$log"; status=1; fi
peak=$(awk '/VmHWM/ {print $2}' "/proc/$mock/status" 2>/dev/null || echo 0)
echo "mock peak RSS: $((peak / 1024)) MB"
[ "$((peak / 1024))" -lt 100 ] || { echo "over 100 MB"; status=1; }
exit $status
