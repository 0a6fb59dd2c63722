"""Chats and their members."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatsio.storage import tables
from chatsio.storage.records import Access, Chat

chats, members = tables.chats, tables.members


class ChatStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        chat_id: str,
        title: str | None,
        created_by: str,
        member_names: list[str],
        now: int,
    ) -> Chat:
        """Store a chat and its members (``created_by`` among them) at once.

        Members come back sorted by name, as every later read lists them.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                chats.insert().values(
                    id=chat_id,
                    title=title,
                    created_by=created_by,
                    created_at=now,
                    active=True,
                    last_seq=0,
                )
            )
            await conn.execute(
                members.insert(),
                [{"chat_id": chat_id, "username": name} for name in member_names],
            )
        return Chat(chat_id, title, tuple(sorted(member_names)), created_by, now, True)

    async def get(self, chat_id: str) -> Chat | None:
        async with self.engine.connect() as conn:
            found = await self._load(conn, chats.c.id == chat_id)
        return found[0] if found else None

    async def for_user(self, username: str, *, active_only: bool = False) -> list[Chat]:
        """The user's chats, active ones first, newest first within each group."""
        condition = chats.c.id.in_(
            select(members.c.chat_id).where(members.c.username == username)
        )
        if active_only:
            condition = and_(condition, chats.c.active)
        async with self.engine.connect() as conn:
            return await self._load(conn, condition)

    async def remove_member(self, chat_id: str, username: str) -> int | None:
        """Take ``username`` out of the chat; return how many members remain.

        None when they were not a member (any more). The chat's row is locked
        first (on SQLite, BEGIN IMMEDIATE locks the file), so of the last two
        members leaving at once exactly one sees none remaining.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                select(chats.c.id).where(chats.c.id == chat_id).with_for_update()
            )
            removed = await conn.execute(
                delete(members).where(
                    members.c.chat_id == chat_id, members.c.username == username
                )
            )
            if removed.rowcount == 0:
                return None
            return (
                await conn.execute(
                    select(func.count()).where(members.c.chat_id == chat_id)
                )
            ).scalar_one()

    async def access(self, chat_id: str, username: str) -> Access:
        query = (
            select(chats.c.active, members.c.username)
            .select_from(
                chats.outerjoin(
                    members,
                    and_(
                        members.c.chat_id == chats.c.id, members.c.username == username
                    ),
                )
            )
            .where(chats.c.id == chat_id)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return Access(exists=False, member=False, active=False)
        return Access(exists=True, member=row.username is not None, active=row.active)

    @staticmethod
    async def _load(conn: AsyncConnection, condition) -> list[Chat]:
        rows = (
            await conn.execute(
                select(chats)
                .where(condition)
                .order_by(chats.c.active.desc(), chats.c.created_at.desc(), chats.c.id)
            )
        ).all()
        if not rows:
            return []
        names: dict[str, list[str]] = defaultdict(list)
        member_rows = await conn.execute(
            select(members.c.chat_id, members.c.username)
            .where(members.c.chat_id.in_([row.id for row in rows]))
            .order_by(members.c.username)
        )
        for chat_id, username in member_rows:
            names[chat_id].append(username)
        return [
            Chat(
                row.id,
                row.title,
                tuple(names[row.id]),
                row.created_by,
                row.created_at,
                row.active,
            )
            for row in rows
        ]
