"""Drives the official openai SDK against soak's mock LLM; prints one JSON object of results.

Usage: python openai_client.py BASE_URL   (BASE_URL ends in /v1)
"""
import json
import sys
import urllib.request

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=2, timeout=20)
out = {}

# 1. Non-streaming chat.
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
out["chat"] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
               "total_tokens": r.usage.total_tokens, "id": r.id}

# 2. Streaming chat with the usage chunk.
ids, text, usage, finish = set(), "", None, None
stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}],
                                        stream=True, stream_options={"include_usage": True})
for chunk in stream:
    ids.add(chunk.id)
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage is not None:
        usage = chunk.usage.completion_tokens
out["stream"] = {"ids": len(ids), "text": text, "usage_completion_tokens": usage, "finish_reason": finish}

# 3. Embeddings with the SDK's default encoding (base64, decoded by the SDK).
e = client.embeddings.create(model="text-embedding-3-small", input=["soak", "mock"])
out["embeddings"] = {"count": len(e.data), "dims": len(e.data[0].embedding),
                     "norm": sum(x * x for x in e.data[0].embedding)}


def retries_seen():
    with urllib.request.urlopen(base_url.rsplit("/v1", 1)[0] + "/__soak/stats") as resp:
        return json.load(resp)["retries_seen"]


# 4. A 429 with retry-after: the SDK retries twice (three attempts), then raises.
before = retries_seen()
try:
    client.chat.completions.create(model="mock-429", messages=[{"role": "user", "content": "x"}])
    out["rate_limit"] = {"raised": None}
except openai.RateLimitError as err:
    out["rate_limit"] = {"raised": type(err).__name__, "status": err.status_code, "retries": retries_seen() - before}

# 5. A 500: retried the same way, then InternalServerError.
before = retries_seen()
try:
    client.chat.completions.create(model="mock-500", messages=[{"role": "user", "content": "x"}])
    out["server_error"] = {"raised": None}
except openai.InternalServerError as err:
    out["server_error"] = {"raised": type(err).__name__, "status": err.status_code, "retries": retries_seen() - before}

print(json.dumps(out))
