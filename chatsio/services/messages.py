"""Posting, joining, typing and reading history."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable

from chatsio.errors import NotFound, Terminated, TooLarge
from chatsio.metrics import Metrics
from chatsio.protocol import (
    CHAT,
    JOIN_RECENT,
    KIND_FILE,
    KIND_MESSAGE,
    NOTIFY,
    SINCE_MAX,
    TYPING,
    chat_room,
    now_ms,
)
from chatsio.schemas import message_out
from chatsio.services.activity import ActiveChats
from chatsio.services.allowance import MessageAllowance
from chatsio.services.chats import ChatService
from chatsio.services.emitter import Emitter
from chatsio.storage import Storage
from chatsio.storage.records import Chat, FileRef, Message, StoredFile


class MessageService:
    def __init__(
        self,
        storage: Storage,
        emitter: Emitter,
        chats: ChatService,
        metrics: Metrics,
        *,
        allowance: MessageAllowance,
        max_file_bytes: int,
        file_quota_bytes: int,
    ) -> None:
        self.metrics = metrics
        self.allowance = allowance
        self.max_file_bytes = max_file_bytes
        self.file_quota_bytes = file_quota_bytes
        # One upload at a time per user on this node, between reading what the
        # user has stored and storing the file: the quota check cannot race.
        self.uploads: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.storage = storage
        self.store = storage.messages
        self.emitter = emitter
        self.chats = chats
        self.active = ActiveChats()

    async def post(
        self,
        user: str,
        chat_id: str,
        text: str,
        client_id: str | None = None,
        origin: str | None = None,
    ) -> Message:
        """Store a user's message, then send it to the room except ``origin``."""
        self.allowance.spend(user)
        asked = time.monotonic()
        message, created = await self.store.append(
            chat_id,
            kind=KIND_MESSAGE,
            text=text,
            sender=user,
            client_id=client_id,
            now=now_ms(),
        )
        if message is None:
            # Nothing stored: find out why, to answer with the right code.
            await self.chats.require_member(user, chat_id, active=True)
            raise Terminated()
        self.active.seen(chat_id, asked)  # the append found the chat active
        if created:
            await self.publish(message, origin)
        return message

    async def post_file(
        self,
        user: str,
        chat_id: str,
        name: str,
        media_type: str,
        data: bytes,
        origin: str | None = None,
    ) -> Message:
        """Store a file and its message together, then announce it to the room."""
        if len(data) > self.max_file_bytes:
            raise TooLarge(
                "the file is over the limit",
                fields={
                    "data": [f"over the limit: at most {self.max_file_bytes} bytes"]
                },
            )
        self.allowance.spend(user)
        async with self.uploads.setdefault(user, asyncio.Lock()):
            await self.check_quota(user, len(data))
            file = FileRef(str(uuid.uuid4()), name, media_type, len(data))
            message, _ = await self.store.append(
                chat_id,
                kind=KIND_FILE,
                text=name,
                sender=user,
                client_id=None,
                now=now_ms(),
                file=file,
                content=data,
            )
        if message is None:
            await self.chats.require_member(user, chat_id, active=True)
            raise Terminated()
        await self.publish(message, origin)
        return message

    async def check_quota(self, user: str, size: int) -> None:
        """Refuse a file that would take the user's stored files over the quota.

        Under ``uploads``' lock, so on one node parallel uploads cannot
        overshoot; nodes do not share it, so each can add one file at most.
        """
        stored = await self.store.file_bytes(user)
        if stored + size > self.file_quota_bytes:
            quota = self.file_quota_bytes
            raise TooLarge(
                f"over the file storage quota of {quota} bytes per user: "
                f"{stored} stored",
                fields={"data": [f"over the quota: {quota - stored} bytes left"]},
            )

    async def download(self, user: str, file_id: str) -> StoredFile:
        """A file's bytes, for members of its chat (ended chats included)."""
        stored = await self.store.file(file_id)
        if stored is None:
            raise NotFound("no such file")
        await self.chats.require_member(user, stored.chat_id, active=False)
        return stored

    async def post_notification(self, chat_id: str, text: str) -> Message:
        """Store a system notification in a chat and send it to the whole room."""
        message = await self.chats.post_notice(chat_id, text)
        if message is None:
            chat = await self.storage.chats.get(chat_id)
            raise NotFound("no such chat") if chat is None else Terminated()
        return message

    async def publish(self, message: Message, origin: str | None) -> None:
        """Count a newly stored message and send it to its room."""
        self.metrics.stored(message.kind)
        await self.emitter.emit(
            NOTIFY,
            message_out.dump(message),
            namespace=CHAT,
            room=chat_room(message.chat_id),
            skip_sid=origin,
        )

    async def join(
        self,
        user: str,
        chat_id: str,
        since: int | None,
        admit: Callable[[], Awaitable[None]],
    ) -> tuple[Chat, list[Message]]:
        """Admit a member's socket to the room, then read what it should catch up on.

        ``admit`` runs before the read, so a message stored meanwhile arrives live
        or in the result (or both: clients de-duplicate by seq), never neither.
        """
        asked = time.monotonic()
        chat = await self.chats.get(user, chat_id)
        if not chat.active:
            raise Terminated()
        self.active.seen(chat_id, asked)
        await admit()
        if since is None:
            recent = await self.store.before(chat_id, None, JOIN_RECENT)
        else:
            recent = await self.store.after(chat_id, since, SINCE_MAX)
        held = await self.held(chat_id, since, recent)
        self.emitter.joined(chat_room(chat_id), held)
        return chat, recent

    async def held(self, chat_id: str, since: int | None, recent: list[Message]) -> int:
        """The seq up to which a socket that joined with ``since`` and got
        ``recent`` has every message (for a node catching up after a Redis
        outage). A ``since`` past the end is the client's word, so the last
        seq is read instead."""
        if recent:
            return recent[-1].seq
        if since is None:
            return 0
        last = await self.store.before(chat_id, None, 1)
        return last[-1].seq if last else 0

    async def leave(
        self, user: str, chat_id: str, depart: Callable[[], Awaitable[None]]
    ) -> None:
        await self.chats.require_member(user, chat_id, active=False)
        await depart()

    async def typing(
        self, user: str, chat_id: str, origin: str | None, *, joined: bool = False
    ) -> None:
        """Tell the room that ``user`` is typing.

        ``joined``: the socket is in the chat's room, which only a member of an
        active chat enters and which leave, disconnect and terminate empty, so
        the membership need not be read again. A room is emptied on other
        nodes only if the bus carried the end, so it is trusted only while the
        chat was seen active lately (``ActiveChats``): a chat ended is refused
        within ``ACTIVE_TTL`` on every node.
        """
        if not (joined and self.active.fresh(chat_id)):
            asked = time.monotonic()
            await self.chats.require_member(user, chat_id, active=True)
            self.active.seen(chat_id, asked)
        await self.emitter.emit(
            TYPING,
            {"id": chat_id, "user": user},
            namespace=CHAT,
            room=chat_room(chat_id),
            skip_sid=origin,
        )

    async def after(
        self,
        user: str,
        chat_id: str,
        *,
        after: int,
        limit: int,
        before: int | None = None,
    ) -> list[Message]:
        """The oldest ``limit`` messages after ``after`` (and before ``before``:
        a window, empty when ``before <= after + 1``); ended chats too."""
        await self.chats.require_member(user, chat_id, active=False)
        return await self.store.after(chat_id, after, limit, before)

    async def history(
        self, user: str, chat_id: str, *, before: int | None, limit: int
    ) -> list[Message]:
        """The newest ``limit`` messages before ``before``; ended chats too."""
        await self.chats.require_member(user, chat_id, active=False)
        return await self.store.before(chat_id, before, limit)
