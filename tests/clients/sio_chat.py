"""A Socket.IO chat server in python-socketio's own idiom, served as an ASGI app by uvicorn:
the same events as sio_chat.js — a `connect` handler that refuses an `auth.token` not
starting with "good-" (ConnectionRefusedError: the client gets a connect_error
"unauthorized"), an acked `echo`, an acked `join` to a room, a `chat` event broadcast to
the room but the sender and acked to it, and `presence` events every second. With
BLOCK_EVERY=N and BLOCK_MS=M, every N-th `echo` busy-waits M ms (blocking the event loop).

Listens on 127.0.0.1 on a port the system picks and prints `listening PORT` first; stops
on SIGTERM, and with EXIT_WITH_STDIN=1 when its stdin closes.
"""

import asyncio
import os
import socket
import sys
import threading
import time

import socketio
import uvicorn

BLOCK_EVERY = int(os.environ.get("BLOCK_EVERY", "0"))
BLOCK_MS = int(os.environ.get("BLOCK_MS", "0"))

sio = socketio.AsyncServer(
    async_mode="asgi", ping_interval=int(os.environ.get("PING_INTERVAL", "25000")) / 1000
)
app = socketio.ASGIApp(sio)
echoes = 0


@sio.event
async def connect(sid, environ, auth):
    token = (auth or {}).get("token") if isinstance(auth, dict) else None
    if not isinstance(token, str) or not token.startswith("good-"):
        raise socketio.exceptions.ConnectionRefusedError("unauthorized")


@sio.event
async def echo(sid, data):
    global echoes
    echoes += 1
    if BLOCK_EVERY and echoes % BLOCK_EVERY == 0:
        until = time.monotonic() + BLOCK_MS / 1000
        while time.monotonic() < until:
            pass  # the event loop is blocked
    return data


@sio.event
async def join(sid, room):
    await sio.enter_room(sid, str(room))
    await sio.save_session(sid, {"room": str(room)})
    return {"ok": True, "room": str(room)}


@sio.event
async def chat(sid, msg):
    session = await sio.get_session(sid)
    room = session.get("room")
    if room is not None:
        await sio.emit("chat", msg, room=room, skip_sid=sid)
    return {"ok": True}


async def presence():
    while True:
        await asyncio.sleep(1)
        await sio.emit("presence", {"online": True})


async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections queue until uvicorn accepts them
    print(f"listening {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(presence())
    await server.serve(sockets=[sock])


if os.environ.get("EXIT_WITH_STDIN") == "1":

    def watch():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()

asyncio.run(main())
