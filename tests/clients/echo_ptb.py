"""An echo bot on python-telegram-bot, unchanged but for its base URL (from the environment).

Usage: python echo_ptb.py            polling
       python echo_ptb.py webhook    webhook mode on a free loopback port
"""
import os
import socket
import sys

from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

API = os.environ["TELEGRAM_API_URL"]
TOKEN = os.environ["TELEGRAM_BOT_TOKEN"]


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.bot.send_chat_action(update.effective_chat.id, "typing")
    await update.message.reply_text(f"echo: {update.message.text}", do_quote=True)


app = ApplicationBuilder().token(TOKEN).base_url(f"{API}/bot").base_file_url(f"{API}/file/bot").build()
app.add_handler(MessageHandler(filters.TEXT, echo))

if len(sys.argv) > 1 and sys.argv[1] == "webhook":
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    app.run_webhook(listen="127.0.0.1", port=port, url_path="hook", secret_token="soak-secret",
                    webhook_url=f"http://127.0.0.1:{port}/hook")
else:
    app.run_polling(timeout=5, poll_interval=0)
