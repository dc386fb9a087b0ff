"""A chat echo server (aiohttp WebSocket) exposing prometheus_client's default process
metrics on a second port, as a Python service in a pod does: the target of the
--target-metrics tests.

    metrics_server.py [--leak BYTES] [--metrics-for N] [--ws-port P] [--metrics-port P]
                      [--exit-with-stdin]

--leak keeps BYTES per message received, forever; --metrics-for stops the metrics
endpoint (its port then refuses) once N messages have been received. Both ports are on
127.0.0.1 (0, the default: picked by the system); the first line printed is
`listening ws=PORT metrics=PORT`. Stops on SIGTERM or Ctrl-C, and with --exit-with-stdin
when its stdin closes (so a test that dies does not leave it running).
"""

import argparse
import asyncio
import signal
import sys

from aiohttp import WSMsgType, web
from prometheus_client import REGISTRY, generate_latest


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--leak", type=int, default=0)
    parser.add_argument("--metrics-for", type=int, default=0)
    parser.add_argument("--ws-port", type=int, default=0)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args()
    kept = []
    received = 0
    metrics_site = None
    stopping = asyncio.Event()

    async def chat(request):
        nonlocal received
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            received += 1
            if args.leak:
                kept.append(b"\xa5" * args.leak)
            await ws.send_str(msg.data)
            if args.metrics_for and received == args.metrics_for and metrics_site:
                asyncio.get_running_loop().create_task(metrics_site.stop())
        return ws

    async def metrics(_request):
        return web.Response(body=generate_latest(REGISTRY), content_type="text/plain")

    chat_app = web.Application()
    chat_app.router.add_get("/ws", chat)
    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", metrics)
    runners = [web.AppRunner(chat_app), web.AppRunner(metrics_app)]
    for r in runners:
        await r.setup()
    chat_site = web.TCPSite(runners[0], "127.0.0.1", args.ws_port)
    metrics_site = web.TCPSite(runners[1], "127.0.0.1", args.metrics_port)
    await chat_site.start()
    await metrics_site.start()
    port = lambda site: site._server.sockets[0].getsockname()[1]
    print(f"listening ws={port(chat_site)} metrics={port(metrics_site)}", flush=True)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    if args.exit_with_stdin:
        loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read(1) or stopping.set())
    await stopping.wait()
    for r in runners:
        await r.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
