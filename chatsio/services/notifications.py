"""System notifications: maintenance notices and the like, from operators."""

from __future__ import annotations

from chatsio.protocol import CONTROL, KIND_NOTIFICATION, NOTIFY, iso, now_ms, user_room
from chatsio.services.emitter import Emitter
from chatsio.services.messages import MessageService
from chatsio.storage.records import Message


class NotificationService:
    def __init__(self, emitter: Emitter, messages: MessageService) -> None:
        self.emitter = emitter
        self.messages = messages

    async def broadcast(self, text: str) -> dict:
        """Send a global notice to every /control socket on every node."""
        return await broadcast(self.emitter, text)

    async def to_chat(self, chat_id: str, text: str) -> Message:
        """Store a notice in a chat, send it to the room and to members' devices."""
        message = await self.messages.post_notification(chat_id, text)
        chat = await self.messages.storage.chats.get(chat_id)
        await self.emitter.emit(
            NOTIFY,
            notice(text, chat_id, message.ts),
            namespace=CONTROL,
            room=[user_room(name) for name in chat.members],
        )
        return message


async def broadcast(emitter: Emitter, text: str) -> dict:
    """A global notice; needs no database, so ``chatsio notify`` can send it."""
    sent = notice(text, None, now_ms())
    await emitter.emit(NOTIFY, sent, namespace=CONTROL)
    return sent


def notice(text: str, chat_id: str | None, ts: int) -> dict:
    return {"kind": KIND_NOTIFICATION, "text": text, "id": chat_id, "ts": iso(ts)}
