"""Messages, with seq allocated inside the transaction that stores them."""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatsio.protocol import KIND_NOTIFICATION
from chatsio.storage import tables
from chatsio.storage.records import FileRef, Message, StoredFile

chats, members, messages, files = (
    tables.chats,
    tables.members,
    tables.messages,
    tables.files,
)


class _Duplicate(Exception):
    def __init__(self, message: Message) -> None:
        self.message = message


def to_message(row) -> Message:
    file = None
    if row.file_id is not None:
        file = FileRef(row.file_id, row.text, row.file_type, row.file_size)
    return Message(
        row.chat_id,
        row.seq,
        row.kind,
        row.text,
        row.sender,
        row.ts,
        row.client_id,
        file,
    )


class MessageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def append(
        self,
        chat_id: str,
        *,
        kind: str,
        text: str,
        sender: str | None,
        client_id: str | None,
        now: int,
        file: FileRef | None = None,
        content: bytes = b"",
    ) -> tuple[Message | None, bool]:
        """Store a message (with ``file``'s ``content``); return it and whether it
        is new. Message and file are stored together or not at all.

        A user's message needs the chat active and the sender a member, checked
        in the same statement that takes the next seq; when either fails nothing
        is stored and ``(None, False)`` comes back. A ``client_id`` the sender
        used before in this chat returns that first message with ``False``.
        """
        try:
            async with self.engine.begin() as conn:
                seq = await self._next_seq(conn, chat_id, sender)
                if seq is None:
                    return None, False
                if client_id is not None:
                    earlier = await self._by_client_id(conn, chat_id, sender, client_id)
                    if earlier is not None:
                        raise _Duplicate(earlier)  # rolls the seq back
                message = Message(
                    chat_id, seq, kind, text, sender, now, client_id, file
                )
                if file is not None:
                    await conn.execute(
                        files.insert().values(
                            id=file.file_id, chat_id=chat_id, data=content
                        )
                    )
                await self._insert(conn, message)
                return message, True
        except _Duplicate as duplicate:
            return duplicate.message, False

    async def end_chat(self, chat_id: str, text: str, now: int) -> Message | None:
        """Mark an active chat ended and store its closing notification.

        Returns None when the chat was not active (already ended or unknown).
        """
        async with self.engine.begin() as conn:
            seq = (
                await conn.execute(
                    update(chats)
                    .where(chats.c.id == chat_id, chats.c.active)
                    .values(active=False, last_seq=chats.c.last_seq + 1)
                    .returning(chats.c.last_seq)
                )
            ).scalar_one_or_none()
            if seq is None:
                return None
            message = Message(chat_id, seq, KIND_NOTIFICATION, text, None, now, None)
            await self._insert(conn, message)
            return message

    async def file(self, file_id: str) -> StoredFile | None:
        """A file's bytes with its description, read from its message."""
        query = (
            select(files.c.data, messages)
            .join(messages, messages.c.file_id == files.c.id)
            .where(files.c.id == file_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredFile(row.chat_id, to_message(row).file, row.data)

    async def after(self, chat_id: str, after: int, limit: int) -> list[Message]:
        """The oldest ``limit`` messages with seq > ``after``, oldest first."""
        query = (
            select(messages)
            .where(messages.c.chat_id == chat_id, messages.c.seq > after)
            .order_by(messages.c.seq)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [to_message(row) for row in await conn.execute(query)]

    async def before(
        self, chat_id: str, before: int | None, limit: int
    ) -> list[Message]:
        """The newest ``limit`` messages with seq < ``before``, oldest first."""
        query = select(messages).where(messages.c.chat_id == chat_id)
        if before is not None:
            query = query.where(messages.c.seq < before)
        query = query.order_by(messages.c.seq.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [to_message(row) for row in reversed(rows)]

    @staticmethod
    async def _next_seq(
        conn: AsyncConnection, chat_id: str, sender: str | None
    ) -> int | None:
        bump = update(chats).where(chats.c.id == chat_id, chats.c.active)
        if sender is not None:
            bump = bump.where(
                exists().where(
                    members.c.chat_id == chat_id, members.c.username == sender
                )
            )
        bump = bump.values(last_seq=chats.c.last_seq + 1).returning(chats.c.last_seq)
        return (await conn.execute(bump)).scalar_one_or_none()

    @staticmethod
    async def _by_client_id(
        conn: AsyncConnection, chat_id: str, sender: str | None, client_id: str
    ) -> Message | None:
        query = select(messages).where(
            messages.c.chat_id == chat_id,
            messages.c.sender == sender,
            messages.c.client_id == client_id,
        )
        row = (await conn.execute(query)).first()
        return None if row is None else to_message(row)

    @staticmethod
    async def _insert(conn: AsyncConnection, message: Message) -> None:
        await conn.execute(
            messages.insert().values(
                chat_id=message.chat_id,
                seq=message.seq,
                kind=message.kind,
                text=message.text,
                sender=message.sender,
                ts=message.ts,
                client_id=message.client_id,
                file_id=message.file and message.file.file_id,
                file_type=message.file and message.file.type,
                file_size=message.file and message.file.size,
            )
        )
