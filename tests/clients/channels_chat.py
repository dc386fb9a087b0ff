"""The Django Channels tutorial's room chat, as a one-file ASGI app for daphne: a
connection to ws/chat/ROOM/ joins group ROOM; each {"message": ...} is group_sent to every
member (the sender too) as {"message": ...}, no id. In-memory channel layer.

    python -m daphne -b 127.0.0.1 -p 0 channels_chat:application   (cwd: tests/clients)

SOAK_CHANNELS_CAPACITY sets the layer's per-channel capacity (default 100: Channels drops
group messages for a full channel, its documented behaviour); SOAK_CHANNELS_SLOW_MS makes
each member take that long over every message it gets (a slow consumer).
"""

import asyncio
import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="soak-test-only",
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["channels"],
    ROOT_URLCONF=__name__,
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": int(os.environ.get("SOAK_CHANNELS_CAPACITY", "100"))},
        }
    },
)
django.setup()
urlpatterns = []

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

SLOW = int(os.environ.get("SOAK_CHANNELS_SLOW_MS", "0")) / 1000


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room_group_name = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data):
        message = json.loads(text_data)["message"]
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    async def chat_message(self, event):
        if SLOW:
            await asyncio.sleep(SLOW)
        await self.send(text_data=json.dumps({"message": event["message"]}))


application = ProtocolTypeRouter(
    {"websocket": URLRouter([re_path(r"ws/chat/(?P<room_name>\w+)/$", ChatConsumer.as_asgi())])}
)
