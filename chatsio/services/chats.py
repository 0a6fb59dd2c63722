"""Starting, reading and ending chats."""

from __future__ import annotations

import uuid

from chatsio.errors import Forbidden, InvalidPayload, NotFound, Terminated
from chatsio.metrics import Metrics
from chatsio.protocol import (
    CHAT,
    CONTROL,
    INVITE,
    NOTIFY,
    TERMINATE,
    chat_room,
    now_ms,
    user_room,
)
from chatsio.schemas import chat_out, message_out
from chatsio.services.emitter import Emitter
from chatsio.storage import Storage
from chatsio.storage.records import Chat


class ChatService:
    def __init__(self, storage: Storage, emitter: Emitter, metrics: Metrics) -> None:
        self.storage = storage
        self.emitter = emitter
        self.metrics = metrics

    async def start(
        self,
        user: str,
        members: list[str],
        title: str | None,
        origin: str | None = None,
    ) -> Chat:
        """Create a chat of ``user`` and ``members``; invite every member's devices.

        ``origin`` is the /control socket that asked, which gets the chat in its
        ack instead of an invite.
        """
        others = [name for name in dict.fromkeys(members) if name != user]
        if not others:
            raise InvalidPayload(fields={"members": ["name at least one other user"]})
        unknown = await self.storage.users.unknown(others)
        if unknown:
            raise NotFound(
                "unknown users",
                fields={"members": [f"unknown user: {n}" for n in unknown]},
            )
        chat = await self.storage.chats.create(
            str(uuid.uuid4()), title, user, [user, *others], now_ms()
        )
        await self.emitter.emit(
            INVITE,
            {"chat": chat_out.dump(chat), "by": user},
            namespace=CONTROL,
            room=[user_room(name) for name in chat.members],
            skip_sid=origin,
        )
        return chat

    async def terminate(self, user: str, chat_id: str) -> None:
        """End a chat: tell every member, post the notice, empty the room."""
        chat = await self.get(user, chat_id)
        if not chat.active:
            raise Terminated()
        notice = await self.storage.messages.end_chat(
            chat_id, f"{user} ended the chat", now_ms()
        )
        if notice is None:  # someone else ended it a moment ago
            raise Terminated()
        await self.emitter.emit(
            TERMINATE,
            {"id": chat_id, "by": user},
            namespace=CONTROL,
            room=[user_room(name) for name in chat.members],
        )
        room = chat_room(chat_id)
        self.metrics.stored(notice.kind)
        await self.emitter.emit(
            NOTIFY, message_out.dump(notice), namespace=CHAT, room=room
        )
        await self.emitter.close_room(room, namespace=CHAT)

    async def get(self, user: str, chat_id: str) -> Chat:
        """The chat, for its members only."""
        chat = await self.storage.chats.get(chat_id)
        if chat is None:
            raise NotFound("no such chat")
        if user not in chat.members:
            raise Forbidden("you are not a member of this chat")
        return chat

    async def of_user(self, user: str, *, active_only: bool = False) -> list[Chat]:
        return await self.storage.chats.for_user(user, active_only=active_only)

    async def require_member(self, user: str, chat_id: str, *, active: bool) -> None:
        """Raise unless ``user`` is a member (and, with ``active``, the chat is on)."""
        access = await self.storage.chats.access(chat_id, user)
        if not access.exists:
            raise NotFound("no such chat")
        if not access.member:
            raise Forbidden("you are not a member of this chat")
        if active and not access.active:
            raise Terminated()
