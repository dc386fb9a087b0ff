#!/usr/bin/env python3
"""Random and hostile HTTP requests against a running `soak mock` for a while; prints
inputs tried, 5xx answers, connections the mock dropped or refused, and the mock's peak RSS.

    scripts/fuzz-mocks.py LLM_ADDR TELEGRAM_ADDR PID SECONDS [SEED]

Each input is one of: a well-formed request with random JSON/form/multipart/query
parameters to a real endpoint, random bytes as a request, a request with random headers
and methods, a trickled request, a silent connection, or a burst of many connections.
Standard library only. Exit 1 when the mock died or answered a 5xx it was not asked for.
"""

import json
import os
import random
import socket
import sys
import threading
import time

LLM_PATHS = ["/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/x", "/__soak/stats", "/v1/nope"]
TG_METHODS = ["getMe", "getUpdates", "sendMessage", "setWebhook", "deleteWebhook", "getWebhookInfo",
              "editMessageText", "sendChatAction", "sendMessageDraft", "deleteMessage",
              "answerCallbackQuery", "sendPhoto", "sendDocument", "madeUp"]
KEYS = ["model", "messages", "input", "stream", "max_tokens", "dimensions", "encoding_format", "n",
        "chat_id", "text", "timeout", "offset", "url", "message_id", "limit", "reply_parameters",
        "stream_options", "temperature", "secret_token", "allowed_updates"]


def rand_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2048, 2049, 3072, 16384, 10 ** 12, 2 ** 63, 1.5, 1e308])
    if kind == 3:
        return "".join(rng.choice("ab\u00e9\U0001F600\"\\ \n{}") for _ in range(rng.randrange(0, 40)))
    if kind == 4:
        return "x" * rng.choice([0, 1, 1000, 40000])
    if kind == 5:
        return rng.choice(["gpt-4o", "mock-500", "mock-429", "text-embedding-3-small", "http://localhost?@10.0.0.1/"])
    if kind == 6:
        return [rand_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 50]))]
    if kind == 7:
        return [{"role": rng.choice(["user", "system", "x"]), "content": rand_value(rng, depth + 1)}]
    return {rng.choice(KEYS): rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def body_for(rng):
    params = {rng.choice(KEYS): rand_value(rng) for _ in range(rng.randrange(0, 6))}
    enc = rng.randrange(4)
    if enc == 0:
        return "application/json", json.dumps(params).encode()
    if enc == 1:
        from urllib.parse import urlencode
        return "application/x-www-form-urlencoded", urlencode({k: json.dumps(v) for k, v in params.items()}).encode()
    if enc == 2:
        parts = []
        for k, v in params.items():
            parts.append(f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{json.dumps(v)}\r\n')
        return "multipart/form-data; boundary=B", ("".join(parts) + "--B--\r\n").encode()
    return rng.choice(["application/json", "text/plain", "", "multipart/form-data"]), os.urandom(rng.randrange(0, 600))


def request(rng, llm, tg):
    if rng.random() < 0.5:
        host = llm
        path = rng.choice(LLM_PATHS)
    else:
        host = tg
        token = rng.choice(["123:abc", "1:x", "notatoken", f"{rng.randrange(10 ** 6)}:r"])
        path = f"/bot{token}/{rng.choice(TG_METHODS)}"
        if rng.random() < 0.3:
            path += "?timeout=0&offset=" + str(rng.randrange(-5, 5))
    method = rng.choice(["POST"] * 6 + ["GET", "PUT", "DELETE", "BREW", ""])
    ctype, body = body_for(rng)
    headers = [f"Host: {host[0]}", f"Content-Type: {ctype}", "Authorization: Bearer sk-fuzz"]
    if rng.random() < 0.1:
        headers.append("x-soak-fault: " + rng.choice(["429", "500", "503", "cut", "error_chunk", "drip", "zzz"]))
    if rng.random() < 0.05:
        headers.append("X-Junk: " + "y" * rng.choice([10, 9000, 70000]))
    length = len(body) if rng.random() > 0.05 else rng.choice([0, len(body) + 100, 10 ** 12])
    head = f"{method} {path} HTTP/1.1\r\n" + "\r\n".join(headers) + f"\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    return host, head.encode() + body, "x-soak-fault" in head or "mock-5" in body.decode("latin-1")


def send(host, data, timeout=2.0, trickle=False):
    """Returns the status code, 0 when the connection was dropped, -1 when refused."""
    try:
        s = socket.create_connection(host, timeout=timeout)
    except OSError:
        return -1
    try:
        if trickle:
            for i in range(0, min(len(data), 60)):
                s.sendall(data[i:i + 1])
                time.sleep(0.02)
        else:
            s.sendall(data)
        reply = b""
        while not reply.endswith(b"\r\n\r\n") and b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        line = reply.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
    except (OSError, ValueError):
        return 0
    finally:
        s.close()


def rss_kb(pid, field="VmHWM:"):
    """The process's peak resident memory (VmHWM) in KiB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


WORKERS = 32


def fuzz(rng, llm, tg, end, totals, lock):
    """One worker: inputs until `end`, counted into `totals`."""
    while time.time() < end:
        kind = rng.choices(["request", "bytes", "trickle", "silent", "burst"], [80, 8, 2, 1, 1])[0]
        asked_5xx = False
        if kind == "request":
            host, data, asked_5xx = request(rng, llm, tg)
            code = send(host, data)
        elif kind == "bytes":
            code = send(rng.choice([llm, tg]), os.urandom(rng.randrange(1, 2000)))
        elif kind == "trickle":
            code = send(rng.choice([llm, tg]), request(rng, llm, tg)[1], timeout=15, trickle=True)
        elif kind == "silent":
            try:
                s = socket.create_connection(rng.choice([llm, tg]), timeout=2)
                time.sleep(0.2)
                s.close()
                code = 200
            except OSError:
                code = -1
        else:
            socks = []
            for _ in range(300):
                try:
                    socks.append(socket.create_connection(rng.choice([llm, tg]), timeout=2))
                except OSError:
                    break
            for s in socks:
                s.close()
            code = 200
        with lock:
            totals["inputs"] += 1
            totals["by_kind"][kind] = totals["by_kind"].get(kind, 0) + 1
            totals["dropped"] += code == 0
            totals["refused"] += code == -1
            if code >= 500 and not asked_5xx:
                totals["unasked_5xx"] += 1
                print(f"5xx {code}", file=sys.stderr)


def main():
    llm_addr, tg_addr, pid, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    parse = lambda a: (a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1]))
    llm, tg = parse(llm_addr), parse(tg_addr)
    totals = {"inputs": 0, "by_kind": {}, "unasked_5xx": 0, "dropped": 0, "refused": 0}
    lock = threading.Lock()
    end = time.time() + seconds
    workers = [threading.Thread(target=fuzz, args=(random.Random(seed * 100 + i), llm, tg, end, totals, lock))
               for i in range(WORKERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    peak = rss_kb(pid)
    totals["mock_alive"] = peak is not None
    totals["mock_peak_rss_mb"] = round((peak or 0) / 1024, 1)
    print(json.dumps(totals))
    sys.exit(0 if totals["mock_alive"] and totals["unasked_5xx"] == 0 else 1)


if __name__ == "__main__":
    main()
