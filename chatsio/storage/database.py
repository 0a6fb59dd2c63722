"""Opening the database: engine, per-dialect settings and the idempotent schema."""

from __future__ import annotations

import re
import sqlite3
import time

from sqlalchemy import bindparam, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatsio.storage.tables import metadata, new_token_key, users

# Any constant works; it only has to be the same in every chatsio process.
SCHEMA_LOCK_ID = 0x63686174


def create_engine(url: str) -> AsyncEngine:
    """Build the engine for a normalized ``sqlite+aiosqlite`` or ``asyncpg`` URL."""
    if url.startswith("sqlite"):
        # One connection: SQLite has one writer anyway, and a single connection
        # keeps in-process transactions from ever waiting on each other's locks.
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
        configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,  # a connection that died with the server is replaced
        pool_size=10,
        max_overflow=20,
        # Fail fast when PostgreSQL is unreachable: events answer internal
        # within about two seconds instead of hanging.
        pool_timeout=2.0,
        connect_args={"timeout": 2.0, "command_timeout": 10.0},
    )


def configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let the "begin" hook below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        apply_sqlite_settings(cursor)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection):
        # IMMEDIATE takes the write lock up front, so two processes sharing the
        # file wait for each other instead of failing with a lock upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# A commit that leaves the WAL at this many pages or more copies it into the
# database (a checkpoint). SQLite's default, 1,000 pages (4 MB), copied the
# index pages of every active chat about once per 500 messages: at 3,000
# messages/s half of each commit's cost. At 4,000 pages (16 MB) a page is
# rewritten in the WAL several times before it is copied once.
WAL_CHECKPOINT_PAGES = 4000


def apply_sqlite_settings(cursor) -> None:
    """What every chatsio connection to a SQLite file sets (a DB-API cursor or
    a ``sqlite3.Connection``): wait for the write lock, WAL and its checkpoint
    size, foreign keys."""
    cursor.execute("PRAGMA busy_timeout=5000")
    enable_wal(cursor)
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")


def enable_wal(cursor, attempts: int = 50) -> None:
    """Switch the file to WAL (a no-op once it is). The switch needs the file
    to itself, and SQLite reports a busy file at once rather than waiting, so a
    process starting beside another one retries for a few seconds."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables; safe when several processes start at once."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_ID})"))
        await conn.run_sync(metadata.create_all)
        await upgrade(conn)


# Databases made by earlier versions are brought up to date here: create_all
# only adds missing tables. Their client_id index covered NULLs too (see
# ``tables``); it is replaced by the partial one. Their unique file_id (a
# column constraint, which SQLite cannot drop without rebuilding the table)
# stays as it is: correct, one index write per message dearer.
CLIENT_ID_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_client_ids"
    " ON messages (chat_id, sender, client_id) WHERE client_id IS NOT NULL"
)
OLD_CLIENT_ID_INDEX = "DROP INDEX IF EXISTS messages_by_client_id"
FILES_BY_SENDER_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_files_by_sender"
    " ON messages (sender, file_size) WHERE file_id IS NOT NULL"
)
# seq is taken by the INSERT itself (last_seq + 1, read under the write lock);
# this trigger then advances chats.last_seq, so a message that is not stored
# (a repeated client_id) never uses up a seq.
TAKE_SEQ = (
    "UPDATE chats SET last_seq = NEW.seq WHERE id = NEW.chat_id AND last_seq < NEW.seq;"
)
SQLITE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS messages_take_seq AFTER INSERT ON messages"
    f" BEGIN {TAKE_SEQ} END"
)
POSTGRES_FUNCTION = (
    "CREATE OR REPLACE FUNCTION chatsio_take_seq() RETURNS trigger"
    f" LANGUAGE plpgsql AS $$ BEGIN {TAKE_SEQ} RETURN NULL; END $$"
)
POSTGRES_TRIGGER = (
    "CREATE TRIGGER messages_take_seq AFTER INSERT ON messages"
    " FOR EACH ROW EXECUTE FUNCTION chatsio_take_seq()"
)


async def upgrade(conn) -> None:
    """Replace an earlier version's client_id index; add the seq trigger
    where it is missing; let chats outlive their creator; key every user;
    say who ended a chat, and when."""
    await conn.exec_driver_sql(CLIENT_ID_INDEX)
    await conn.exec_driver_sql(OLD_CLIENT_ID_INDEX)
    await conn.exec_driver_sql(FILES_BY_SENDER_INDEX)
    await add_seq_trigger(conn)
    await drop_creator_foreign_key(conn)
    await add_token_keys(conn)
    await add_ended_by(conn)
    await add_ended_at(conn)
    await add_last_seen(conn)
    await add_read_marks(conn)


async def add_ended_by(conn) -> None:
    """``chats.ended_by``, NULL for the chats already ended."""
    columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("chats"))
    if not any(column["name"] == "ended_by" for column in columns):
        await conn.exec_driver_sql("ALTER TABLE chats ADD COLUMN ended_by VARCHAR(32)")


CHATS_BY_CREATED_AT_INDEX = (
    "CREATE INDEX IF NOT EXISTS chats_by_created_at ON chats (created_at)"
)
CHATS_BY_ENDED_AT_INDEX = (
    "CREATE INDEX IF NOT EXISTS chats_by_ended_at"
    " ON chats (ended_at) WHERE ended_at IS NOT NULL"
)


async def add_ended_at(conn) -> None:
    """``chats.ended_at``, NULL for the chats already ended, and the indexes
    a catch-up finds the chats started or ended lately by."""
    columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("chats"))
    if not any(column["name"] == "ended_at" for column in columns):
        await conn.exec_driver_sql("ALTER TABLE chats ADD COLUMN ended_at BIGINT")
    await conn.exec_driver_sql(CHATS_BY_CREATED_AT_INDEX)
    await conn.exec_driver_sql(CHATS_BY_ENDED_AT_INDEX)


async def add_read_marks(conn) -> None:
    """``members.read_seq`` (0: nothing read yet) and ``members.read_at``."""
    columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("members"))
    if not any(column["name"] == "read_seq" for column in columns):
        await conn.exec_driver_sql(
            "ALTER TABLE members ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0"
        )
        await conn.exec_driver_sql("ALTER TABLE members ADD COLUMN read_at BIGINT")


async def add_last_seen(conn) -> None:
    """``users.last_seen``, NULL (never seen) for the users already there."""
    columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("users"))
    if not any(column["name"] == "last_seen" for column in columns):
        await conn.exec_driver_sql("ALTER TABLE users ADD COLUMN last_seen BIGINT")


async def add_seq_trigger(conn) -> None:
    if conn.dialect.name != "postgresql":
        await conn.exec_driver_sql(SQLITE_TRIGGER)
        return
    found = await conn.exec_driver_sql(
        "SELECT 1 FROM pg_trigger WHERE tgname = 'messages_take_seq'"
    )
    if found.first() is None:
        await conn.exec_driver_sql(POSTGRES_FUNCTION)
        await conn.exec_driver_sql(POSTGRES_TRIGGER)


async def add_token_keys(conn) -> None:
    """Give every user of an earlier version a ``token_key`` of their own."""
    columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("users"))
    if any(column["name"] == "token_key" for column in columns):
        return
    # NOT NULL needs a default for the rows already there; each gets its own
    # key below, in the same transaction, so no row keeps the empty one.
    await conn.exec_driver_sql(
        "ALTER TABLE users ADD COLUMN token_key VARCHAR(32) NOT NULL DEFAULT ''"
    )
    names = await conn.execute(users.select().with_only_columns(users.c.username))
    keys = [{"name": name, "key": new_token_key()} for name in names.scalars()]
    if keys:
        set_key = (
            users.update()
            .where(users.c.username == bindparam("name"))
            .values(token_key=bindparam("key"))
        )
        await conn.execute(set_key, keys)


# Earlier versions made chats.created_by a foreign key to users, which kept a
# user who had started a chat from ever being deleted.
CREATOR_FOREIGN_KEY = re.compile(
    r",\s*FOREIGN KEY\s*\(\s*created_by\s*\)\s*REFERENCES\s+users\s*\(\s*username\s*\)",
    re.IGNORECASE,
)


async def drop_creator_foreign_key(conn) -> None:
    if conn.dialect.name == "postgresql":
        found = await conn.exec_driver_sql(
            "SELECT conname FROM pg_constraint WHERE contype = 'f'"
            " AND conrelid = 'chats'::regclass AND confrelid = 'users'::regclass"
        )
        for name in found.scalars().all():
            await conn.exec_driver_sql(f'ALTER TABLE chats DROP CONSTRAINT "{name}"')
        return
    found = await conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'chats'"
    )
    old = found.scalar_one()
    new = CREATOR_FOREIGN_KEY.sub("", old)
    if new == old:
        return
    # SQLite cannot drop a constraint; its documented way for removing a
    # foreign key, which changes nothing stored, is to edit the table's
    # definition in sqlite_master (https://sqlite.org/lang_altertable.html,
    # "Making Other Kinds Of Table Schema Changes").
    version = (await conn.exec_driver_sql("PRAGMA schema_version")).scalar_one()
    await conn.exec_driver_sql("PRAGMA writable_schema=ON")
    await conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'chats'",
        (new,),
    )
    await conn.exec_driver_sql(f"PRAGMA schema_version={version + 1}")
    await conn.exec_driver_sql("PRAGMA writable_schema=OFF")


def insert_ignoring_conflicts(engine: AsyncEngine, table):
    """An INSERT that skips rows whose key exists, in the engine's dialect."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()
