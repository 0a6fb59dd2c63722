"""Users, when they were last seen, and the server-wide settings row."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsio.errors import Conflict
from chatsio.storage import tables
from chatsio.storage.database import insert_ignoring_conflicts
from chatsio.storage.records import User

# Built once: it runs on every REST request and socket connect.
TOKEN_KEY_OF = select(tables.users.c.token_key).where(
    tables.users.c.username == bindparam("name")
)


class UserStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, username: str, password_hash: str, *, is_admin: bool, now: int
    ) -> User:
        token_key = tables.new_token_key()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    tables.users.insert().values(
                        username=username,
                        password_hash=password_hash,
                        is_admin=is_admin,
                        created_at=now,
                        token_key=token_key,
                    )
                )
        except IntegrityError:
            raise Conflict(f"username {username!r} is taken") from None
        return User(username, password_hash, is_admin, token_key)

    async def get(self, username: str) -> User | None:
        query = select(tables.users).where(tables.users.c.username == username)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return User(row.username, row.password_hash, row.is_admin, row.token_key)

    async def token_key(self, username: str) -> str | None:
        """The user's token key, None when there is no such user: one lookup
        by primary key, made for every request and socket connect."""
        async with self.engine.connect() as conn:
            return (await conn.execute(TOKEN_KEY_OF, {"name": username})).scalar()

    async def token_keys(self, usernames: Iterable[str]) -> dict[str, str]:
        """The token key of each of ``usernames`` that is a user."""
        query = select(tables.users.c.username, tables.users.c.token_key).where(
            tables.users.c.username.in_(list(usernames))
        )
        async with self.engine.connect() as conn:
            return {name: key for name, key in await conn.execute(query)}

    async def delete(self, username: str) -> bool:
        """Delete the user and their memberships; False if there was none.

        Their messages and the chats they started stay: ``sender`` and
        ``created_by`` are plain names.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(tables.members).where(tables.members.c.username == username)
            )
            deleted = await conn.execute(
                delete(tables.users).where(tables.users.c.username == username)
            )
        return deleted.rowcount == 1

    async def replace_password_hash(self, username: str, old: str, new: str) -> bool:
        """Store ``new`` if the user's hash is still ``old`` (a rehash must not
        overwrite a password set meanwhile); False if it was not."""
        users = tables.users
        query = (
            update(users)
            .where(users.c.username == username, users.c.password_hash == old)
            .values(password_hash=new)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1

    async def unknown(self, usernames: Iterable[str]) -> list[str]:
        """The names among ``usernames`` that belong to no user, in input order."""
        names = list(usernames)
        query = select(tables.users.c.username).where(
            tables.users.c.username.in_(names)
        )
        async with self.engine.connect() as conn:
            known = set((await conn.execute(query)).scalars())
        return [name for name in names if name not in known]

    async def set_last_seen(self, username: str, last_seen: int | None) -> None:
        """Record when the user went offline (None: they are online)."""
        users = tables.users
        query = (
            update(users)
            .where(users.c.username == username)
            .values(last_seen=last_seen)
        )
        async with self.engine.begin() as conn:
            await conn.execute(query)

    async def last_seen(self, names: Collection[str]) -> dict[str, int | None]:
        """The named users that exist: name -> last_seen."""
        users = tables.users
        query = select(users.c.username, users.c.last_seen).where(
            users.c.username.in_(list(names))
        )
        async with self.engine.connect() as conn:
            return {name: seen for name, seen in await conn.execute(query)}

    async def co_members(
        self, username: str, among: Collection[str] | None = None
    ) -> dict[str, int | None]:
        """The users sharing an active chat with ``username`` (not themself),
        those of ``among`` only if given: name -> last_seen."""
        mine, theirs = tables.members.alias("mine"), tables.members.alias("theirs")
        chats, users = tables.chats, tables.users
        query = (
            select(users.c.username, users.c.last_seen)
            .select_from(
                mine.join(chats, chats.c.id == mine.c.chat_id)
                .join(theirs, theirs.c.chat_id == mine.c.chat_id)
                .join(users, users.c.username == theirs.c.username)
            )
            .where(
                mine.c.username == username,
                chats.c.active,
                theirs.c.username != username,
            )
            .distinct()
        )
        if among is not None:
            query = query.where(theirs.c.username.in_(list(among)))
        async with self.engine.connect() as conn:
            return {name: seen for name, seen in await conn.execute(query)}

    async def setting(self, key: str, default: str) -> str:
        """Read a server-wide setting, storing ``default`` if it has none yet.

        The first process to store wins; every other one reads its value.
        """
        insert = insert_ignoring_conflicts(self.engine, tables.settings)
        async with self.engine.begin() as conn:
            await conn.execute(insert.values(key=key, value=default))
            query = select(tables.settings.c.value).where(tables.settings.c.key == key)
            return (await conn.execute(query)).scalar_one()
