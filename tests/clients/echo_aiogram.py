"""An echo bot on aiogram 3, unchanged but for its API server (from the environment)."""
import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

API = os.environ["TELEGRAM_API_URL"]
TOKEN = os.environ["TELEGRAM_BOT_TOKEN"]

dp = Dispatcher()


@dp.message()
async def echo(message: Message) -> None:
    await message.reply(f"echo: {message.text}")


async def main() -> None:
    bot = Bot(token=TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(API)))
    await dp.start_polling(bot, polling_timeout=5, handle_signals=True)


asyncio.run(main())
