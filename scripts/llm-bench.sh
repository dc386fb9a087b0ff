#!/usr/bin/env bash
# Benchmark (not a test): what the mock LLM sustains on one core.
#  1. Non-streaming chat completions per second: the mock pinned to core 0 (taskset), wrk
#     on core 1, zero latency and 8-token replies, DURATION_S seconds.
#  2. Concurrent open streams: STREAMS streamed requests held open at once (slow tokens),
#     counted by the mock's own /__soak/stats.
# Needs wrk (apt-get install wrk). Loopback only; the mock is killed by PID.
#   scripts/llm-bench.sh [DURATION_S=10] [STREAMS=5000]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION_S="${1:-10}"; STREAMS="${2:-5000}"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet
work=$(mktemp -d)
cat > "$work/mock.toml" <<'TOML'
[llm]
ttft_ms = { dist = "fixed", value = 0 }
itl_ms = { dist = "fixed", value = 200 }
reply_tokens = { dist = "fixed", value = 8 }
TOML
taskset -c 0 target/release/soak mock --llm --listen 127.0.0.1:0 --config "$work/mock.toml" >"$work/mock.log" &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q OPENAI_BASE_URL "$work/mock.log" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$work/mock.log" | head -1)

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}'
LUA
# Non-streaming replies take TTFT + tokens × ITL: with ITL 200 ms that is 1.6 s each, so
# wrk gets its own config with no latency at all.
kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true
sed -i 's/value = 200/value = 0/' "$work/mock.toml"
taskset -c 0 target/release/soak mock --llm --listen "${base#http://}" --config "$work/mock.toml" >"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do grep -q OPENAI_BASE_URL "$work/mock.log" && break; sleep 0.1; done
echo "== non-streaming chat completions, mock on one core =="
taskset -c 1 wrk -t1 -c64 -d"${DURATION_S}s" -s "$work/post.lua" "$base/v1/chat/completions" | grep -E "Requests/sec|Latency|Non-2xx" || true

kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true
sed -i 's/itl_ms = { dist = "fixed", value = 0 }/itl_ms = { dist = "fixed", value = 2000 }/' "$work/mock.toml"
taskset -c 0 target/release/soak mock --llm --listen "${base#http://}" --config "$work/mock.toml" >"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do grep -q OPENAI_BASE_URL "$work/mock.log" && break; sleep 0.1; done
echo "== concurrent open streams (each token 2 s apart) =="
python3 - "$base" "$STREAMS" <<'PY'
import asyncio, json, sys, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
host, port = base.replace("http://", "").split(":")
body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer k\r\n"
       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
async def one():
    r, w = await asyncio.open_connection(host, int(port))
    w.write(req); await w.drain()
    await r.readuntil(b"\r\n\r\n")
    await asyncio.sleep(6)
    w.close()
async def main():
    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await asyncio.sleep(4)
    stats = json.load(urllib.request.urlopen(base + "/__soak/stats"))
    print(f"streams open at once: {stats['streams_open']} of {n} requested")
    await asyncio.gather(*tasks, return_exceptions=True)
asyncio.run(main())
PY
