"""A bot with no library (urllib long polling) that takes 1 s per message.

Usage: python slow_bot.py sequential   answers users one at a time (a blocking handler)
       python slow_bot.py concurrent   answers each message on its own thread
"""
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request

API = os.environ["TELEGRAM_API_URL"]
TOKEN = os.environ["TELEGRAM_BOT_TOKEN"]
MODE = sys.argv[1]


def call(method, **params):
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{API}/bot{TOKEN}/{method}", data=data, timeout=30) as resp:
        return json.load(resp)["result"]


def answer(message):
    time.sleep(1.0)
    call("sendMessage", chat_id=message["chat"]["id"], text="done",
         reply_parameters=json.dumps({"message_id": message["message_id"]}))


offset = 0
while True:
    for update in call("getUpdates", offset=offset, timeout=5):
        offset = update["update_id"] + 1
        if "message" not in update:
            continue
        if MODE == "sequential":
            answer(update["message"])
        else:
            threading.Thread(target=answer, args=(update["message"],), daemon=True).start()
