"""A bot with no library that writes its reply by editing it: a placeholder message,
then three edits 200 ms apart (the way bots stream LLM answers)."""
import json
import os
import threading
import time
import urllib.parse
import urllib.request

API = os.environ["TELEGRAM_API_URL"]
TOKEN = os.environ["TELEGRAM_BOT_TOKEN"]


def call(method, **params):
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{API}/bot{TOKEN}/{method}", data=data, timeout=30) as resp:
        return json.load(resp)["result"]


def answer(message):
    chat = message["chat"]["id"]
    sent = call("sendMessage", chat_id=chat, text="…",
                reply_parameters=json.dumps({"message_id": message["message_id"]}))
    text = ""
    for word in ["streamed", "by", "edits"]:
        time.sleep(0.2)
        text += word + " "
        call("editMessageText", chat_id=chat, message_id=sent["message_id"], text=text)


offset = 0
while True:
    for update in call("getUpdates", offset=offset, timeout=5):
        offset = update["update_id"] + 1
        if "message" in update:
            threading.Thread(target=answer, args=(update["message"],), daemon=True).start()
