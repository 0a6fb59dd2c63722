"""Storage: SQLAlchemy Core over SQLite or PostgreSQL. Knows nothing of sockets."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsio.storage.chats import ChatStore
from chatsio.storage.database import create_engine, create_schema
from chatsio.storage.messages import MessageStore
from chatsio.storage.reads import ReadStore
from chatsio.storage.users import UserStore


@dataclass(frozen=True)
class Storage:
    engine: AsyncEngine
    users: UserStore
    chats: ChatStore
    messages: MessageStore
    reads: ReadStore

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.messages.close()
        await self.engine.dispose()


async def open_storage(url: str) -> Storage:
    """Connect and create the schema if it is missing."""
    engine = create_engine(url)
    try:
        await create_schema(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Storage(
        engine,
        UserStore(engine),
        ChatStore(engine),
        MessageStore(engine),
        ReadStore(engine),
    )
