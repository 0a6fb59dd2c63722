"""Read marks: how far each member has read each chat (``members.read_seq``)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatsio.storage import tables
from chatsio.storage.records import ReadMark

chats, members, messages = tables.chats, tables.members, tables.messages


class ReadStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def advance(self, chat_id: str, user: str, seq: int, now: int) -> int | None:
        """Move the member's mark up to ``seq``, clamped to the chat's last
        seq, in one statement; the new mark, or None when it did not move
        (a lower or equal ``seq``, or no such member)."""
        target = case((chats.c.last_seq < seq, chats.c.last_seq), else_=seq)
        statement = (
            members.update()
            .where(
                members.c.chat_id == chats.c.id,
                chats.c.id == chat_id,
                members.c.username == user,
                members.c.read_seq < target,
            )
            .values(read_seq=target, read_at=now)
            .returning(members.c.read_seq)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).scalar_one_or_none()

    async def moved_since(
        self,
        since: int,
        *,
        chat_ids: Collection[str] = (),
        users: Collection[str] = (),
    ) -> list[ReadMark]:
        """The marks that moved at ``since`` (ms) or later, in ``chat_ids``
        or of ``users``."""
        query = select(members.c.chat_id, members.c.username, members.c.read_seq).where(
            members.c.read_at >= since,
            or_(members.c.chat_id.in_(chat_ids), members.c.username.in_(users)),
        )
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
        return [ReadMark(*row) for row in rows]


async def unread_counts(
    conn: AsyncConnection, chat_ids: list[str], viewer: str
) -> dict[str, int]:
    """Per chat of ``chat_ids`` with any: the messages past ``viewer``'s mark
    that ``viewer`` did not send. One grouped query, over the messages'
    primary key from each mark on."""
    query = (
        select(members.c.chat_id, func.count())
        .select_from(
            members.join(
                messages,
                and_(
                    messages.c.chat_id == members.c.chat_id,
                    messages.c.seq > members.c.read_seq,
                ),
            )
        )
        .where(
            members.c.username == viewer,
            members.c.chat_id.in_(chat_ids),
            or_(messages.c.sender.is_(None), messages.c.sender != viewer),
        )
        .group_by(members.c.chat_id)
    )
    return dict((await conn.execute(query)).all())
