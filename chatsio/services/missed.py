"""What a node may have missed while its bus was down, read from the database."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Collection

from chatsio.storage import Storage
from chatsio.storage.records import ChatChange, Missed

CHATS_PER_QUERY = 500
MESSAGES_PER_QUERY = 1000
USERS_PER_QUERY = 500


class MissedMessages:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def since(self, floors: dict[str, int]) -> AsyncIterator[list[Missed]]:
        """Every message stored in each chat above its floor (chat id to
        seq), a page per query: at most CHATS_PER_QUERY chats and
        MESSAGES_PER_QUERY messages, by chat and seq."""
        pending = dict(floors)
        while pending:
            batch = dict(itertools.islice(pending.items(), CHATS_PER_QUERY))
            page = await self.storage.messages.missed(batch, MESSAGES_PER_QUERY)
            for chat_id in batch:
                del pending[chat_id]
            if page:
                yield page
            if len(page) == MESSAGES_PER_QUERY:
                # Maybe more: the last chat read goes on after its last seq;
                # chats not reached yet are read again, those passed are done.
                seen = {missed.message.chat_id for missed in page}
                pending.update({c: f for c, f in batch.items() if c not in seen})
                last = page[-1].message
                pending[last.chat_id] = last.seq

    async def ending(self, chat_id: str) -> tuple[bool, str | None]:
        """Whether the chat has ended, and who ended it: its state as read
        with its first message (an ended chat has its end notice at least)."""
        first = await self.storage.messages.missed({chat_id: 0}, 1)
        if not first:
            return False, None
        return not first[0].chat_active, first[0].ended_by

    async def members(self, chat_id: str) -> tuple[str, ...]:
        """The chat's members now (none when there is no such chat)."""
        chat = await self.storage.chats.get(chat_id)
        return chat.members if chat else ()

    async def changed(
        self, since: int, users: Collection[str]
    ) -> AsyncIterator[list[ChatChange]]:
        """The chats started or ended at ``since`` (ms) or later, once for
        each of their members among ``users``: a page per query of at most
        USERS_PER_QUERY users."""
        names = list(users)
        for start in range(0, len(names), USERS_PER_QUERY):
            page = names[start : start + USERS_PER_QUERY]
            yield await self.storage.chats.changed(since, page)
