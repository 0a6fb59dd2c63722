"""Messages: appends (see ``appends``), the closing notice, history, files."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatsio.protocol import KIND_NOTIFICATION
from chatsio.storage import tables
from chatsio.storage.append_sql import Append, to_message
from chatsio.storage.appends import AppendWriter
from chatsio.storage.records import FileRef, Message, Missed, StoredFile

chats, members, messages, files = (
    tables.chats,
    tables.members,
    tables.messages,
    tables.files,
)


class MessageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.writer = AppendWriter(engine)

    async def close(self) -> None:
        """Let appends in flight finish; stop the writer's thread (SQLite)."""
        await self.writer.close()

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
        is new. Message and file are stored together or not at all, committed
        with the other appends of the moment (see ``appends``).

        A user's message needs the chat active and the sender a member, checked
        in the same statement that takes the next seq; when either fails nothing
        is stored and ``(None, False)`` comes back. A ``client_id`` the sender
        used before in this chat returns that first message with ``False``.
        """
        return await self.writer.append(
            Append(chat_id, kind, text, sender, client_id, now, file, content)
        )

    async def end_chat(
        self, chat_id: str, text: str, now: int, ended_by: str | None = None
    ) -> Message | None:
        """Mark an active chat ended (by ``ended_by``) and store its closing
        notification.

        Returns None when the chat was not active (already ended or unknown).
        """
        async with self.engine.begin() as conn:
            seq = (
                await conn.execute(
                    update(chats)
                    .where(chats.c.id == chat_id, chats.c.active)
                    .values(
                        active=False,
                        last_seq=chats.c.last_seq + 1,
                        ended_by=ended_by,
                        ended_at=now,
                    )
                    .returning(chats.c.last_seq)
                )
            ).scalar_one_or_none()
            if seq is None:
                return None
            message = Message(chat_id, seq, KIND_NOTIFICATION, text, None, now, None)
            await self._insert(conn, message)
            return message

    async def missed(self, floors: dict[str, int], limit: int) -> list[Missed]:
        """The first ``limit`` messages above each chat's floor (chat id to
        seq), by chat and seq, each with its chat's state now: one query."""
        above = or_(
            *(
                and_(messages.c.chat_id == chat_id, messages.c.seq > floor)
                for chat_id, floor in floors.items()
            )
        )
        query = (
            select(messages, chats.c.active, chats.c.ended_by)
            .join_from(messages, chats, messages.c.chat_id == chats.c.id)
            .where(above)
            .order_by(messages.c.chat_id, messages.c.seq)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Missed(to_message(row), row.active, row.ended_by) for row in rows]

    async def file(self, file_id: str) -> StoredFile | None:
        """A file's bytes with its description, read from its message."""
        query = (
            select(messages, files.c.data)
            .join(messages, messages.c.file_id == files.c.id)
            .where(files.c.id == file_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return StoredFile(row.chat_id, to_message(row).file, row.data)

    async def file_bytes(self, sender: str) -> int:
        """The sizes of the files ``sender`` has stored, summed (index
        ``messages_files_by_sender``)."""
        query = select(func.coalesce(func.sum(messages.c.file_size), 0)).where(
            messages.c.sender == sender, tables.HAS_FILE
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def after(
        self, chat_id: str, after: int, limit: int, before: int | None = None
    ) -> list[Message]:
        """The oldest ``limit`` messages with seq > ``after`` (and < ``before``),
        oldest first."""
        query = select(messages).where(
            messages.c.chat_id == chat_id, messages.c.seq > after
        )
        if before is not None:
            query = query.where(messages.c.seq < before)
        query = query.order_by(messages.c.seq).limit(limit)
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
