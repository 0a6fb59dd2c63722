"""Chats and their members."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatsio.storage import tables
from chatsio.storage.reads import unread_counts
from chatsio.storage.records import Access, Chat, ChatChange

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

        Members come back sorted by name, as every later read lists them,
        each with nothing read.
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
        names = tuple(sorted(member_names))
        return Chat(
            chat_id, title, names, created_by, now, True, dict.fromkeys(names, 0)
        )

    async def get(self, chat_id: str, viewer: str | None = None) -> Chat | None:
        """The chat, as ``viewer`` sees it when named (see ``Chat``)."""
        async with self.engine.connect() as conn:
            found = await self._load(conn, chats.c.id == chat_id, viewer)
        return found[0] if found else None

    async def for_user(self, username: str, *, active_only: bool = False) -> list[Chat]:
        """The user's chats as they see them, active ones first, newest first
        within each group."""
        condition = chats.c.id.in_(
            select(members.c.chat_id).where(members.c.username == username)
        )
        if active_only:
            condition = and_(condition, chats.c.active)
        async with self.engine.connect() as conn:
            return await self._load(conn, condition, username)

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

    async def changed(self, since: int, usernames: Collection[str]) -> list[ChatChange]:
        """The chats started or ended at ``since`` (ms) or later, once for
        each of their members among ``usernames``."""
        query = (
            select(
                chats.c.id,
                members.c.username,
                chats.c.created_at,
                chats.c.active,
                chats.c.ended_by,
            )
            .join_from(chats, members, members.c.chat_id == chats.c.id)
            .where(
                or_(chats.c.created_at >= since, chats.c.ended_at >= since),
                members.c.username.in_(usernames),
            )
        )
        async with self.engine.connect() as conn:
            return [ChatChange(*row) for row in await conn.execute(query)]

    async def access(self, chat_id: str, username: str) -> Access:
        query = (
            select(chats.c.active, members.c.username, members.c.read_seq)
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
        if row.username is None:
            return Access(exists=True, member=False, active=row.active)
        return Access(
            exists=True, member=True, active=row.active, read_seq=row.read_seq
        )

    @staticmethod
    async def _load(conn: AsyncConnection, condition, viewer: str | None) -> list[Chat]:
        rows = (
            await conn.execute(
                select(chats)
                .where(condition)
                .order_by(chats.c.active.desc(), chats.c.created_at.desc(), chats.c.id)
            )
        ).all()
        if not rows:
            return []
        ids = [row.id for row in rows]
        reads: dict[str, dict[str, int]] = defaultdict(dict)
        member_rows = await conn.execute(
            select(members.c.chat_id, members.c.username, members.c.read_seq)
            .where(members.c.chat_id.in_(ids))
            .order_by(members.c.username)
        )
        for chat_id, username, read_seq in member_rows:
            reads[chat_id][username] = read_seq
        unread = await unread_counts(conn, ids, viewer) if viewer else {}
        return [
            Chat(
                row.id,
                row.title,
                tuple(reads[row.id]),
                row.created_by,
                row.created_at,
                row.active,
                reads[row.id],
                reads[row.id].get(viewer, 0),
                unread.get(row.id, 0),
            )
            for row in rows
        ]
