"""Read marks: a member moves theirs forward; the room and their devices hear it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from chatsio.protocol import CHAT, CONTROL, READ, chat_room, now_ms, user_room
from chatsio.services.chats import ChatService
from chatsio.services.emitter import Emitter
from chatsio.storage import Storage
from chatsio.storage.records import ReadMark

NAMES_PER_QUERY = 500


class ReadService:
    def __init__(self, storage: Storage, emitter: Emitter, chats: ChatService) -> None:
        self.store = storage.reads
        self.emitter = emitter
        self.chats = chats

    async def read(
        self, user: str, chat_id: str, seq: int, origin: str | None = None
    ) -> int:
        """``user`` has read chat ``chat_id`` up to ``seq``: their mark now.

        The mark only moves forward, to the chat's last seq at most, ended
        chats too. A move is one write, told to the chat's room (but
        ``origin``, the socket that asked) and to the user's /control sockets;
        when nothing moved, the membership is checked and nobody is told.
        """
        moved = await self.store.advance(chat_id, user, seq, now_ms())
        if moved is None:
            access = await self.chats.require_member(user, chat_id, active=False)
            return access.read_seq
        event = {"id": chat_id, "user": user, "seq": moved}
        await self.emitter.emit(
            READ, event, namespace=CHAT, room=chat_room(chat_id), skip_sid=origin
        )
        await self.emitter.emit(READ, event, namespace=CONTROL, room=user_room(user))
        return moved

    async def moved_since(
        self, since: int, chat_ids: Collection[str], users: Collection[str]
    ) -> AsyncIterator[list[ReadMark]]:
        """The marks moved at ``since`` (ms) or later in ``chat_ids`` and of
        ``users``, a page per query of at most NAMES_PER_QUERY names each."""
        chat_ids, users = list(chat_ids), list(users)
        for start in range(0, max(len(chat_ids), len(users)), NAMES_PER_QUERY):
            page = slice(start, start + NAMES_PER_QUERY)
            yield await self.store.moved_since(
                since, chat_ids=chat_ids[page], users=users[page]
            )
