"""Users and the server-wide settings row."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsio.errors import Conflict
from chatsio.storage import tables
from chatsio.storage.database import insert_ignoring_conflicts
from chatsio.storage.records import User


class UserStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, username: str, password_hash: str, *, is_admin: bool, now: int
    ) -> User:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    tables.users.insert().values(
                        username=username,
                        password_hash=password_hash,
                        is_admin=is_admin,
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise Conflict(f"username {username!r} is taken") from None
        return User(username, password_hash, is_admin)

    async def get(self, username: str) -> User | None:
        query = select(tables.users).where(tables.users.c.username == username)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return User(row.username, row.password_hash, row.is_admin)

    async def unknown(self, usernames: Iterable[str]) -> list[str]:
        """The names among ``usernames`` that belong to no user, in input order."""
        names = list(usernames)
        query = select(tables.users.c.username).where(
            tables.users.c.username.in_(names)
        )
        async with self.engine.connect() as conn:
            known = set((await conn.execute(query)).scalars())
        return [name for name in names if name not in known]

    async def setting(self, key: str, default: str) -> str:
        """Read a server-wide setting, storing ``default`` if it has none yet.

        The first process to store wins; every other one reads its value.
        """
        insert = insert_ignoring_conflicts(self.engine, tables.settings)
        async with self.engine.begin() as conn:
            await conn.execute(insert.values(key=key, value=default))
            query = select(tables.settings.c.value).where(tables.settings.c.key == key)
            return (await conn.execute(query)).scalar_one()
