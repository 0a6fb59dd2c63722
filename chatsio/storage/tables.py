"""The database schema in SQLAlchemy Core. Timestamps are integer ms (UTC)."""

from __future__ import annotations

import secrets

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()


def new_token_key() -> str:
    """A fresh ``users.token_key``: 16 URL-safe characters, 96 random bits."""
    return secrets.token_urlsafe(12)


users = Table(
    "users",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    # Random, made with the row and signed into every token issued to it: a
    # token whose user was deleted (or deleted and registered again) matches
    # no row, so it is refused.
    Column("token_key", String(32), nullable=False),
    # When the user's last /control connection closed; NULL while online or
    # if never seen (services/presence.py writes it on each change).
    Column("last_seen", BigInteger, nullable=True),
)

chats = Table(
    "chats",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(100), nullable=True),
    # A plain name, like messages.sender: the chat outlives its creator's
    # account (`chatsio deleteuser`), so it is no foreign key.
    Column("created_by", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    # Who ended it: a node that missed the live ``terminate`` (its Redis was
    # down) sends it from here when it catches up.
    Column("ended_by", String(32), nullable=True),
    # When it ended (ms; NULL while active, and for chats ended before the
    # column came): with ``created_at``, what a catch-up finds changed.
    Column("ended_at", BigInteger, nullable=True),
    # The last seq handed out: bumping it in the message's own transaction is
    # what keeps seq gapless and unique under concurrent writers on every node.
    Column("last_seq", Integer, nullable=False, default=0),
)

# The chats started or ended lately, for a catch-up (``ChatStore.changed``).
Index("chats_by_created_at", chats.c.created_at)
HAS_ENDED = chats.c.ended_at.isnot(None)
Index(
    "chats_by_ended_at",
    chats.c.ended_at,
    sqlite_where=HAS_ENDED,
    postgresql_where=HAS_ENDED,
)

members = Table(
    "members",
    metadata,
    Column("chat_id", String(36), ForeignKey("chats.id"), primary_key=True),
    Column("username", String(32), ForeignKey("users.username"), primary_key=True),
    # How far the member has read (a seq; 0: nothing), and when it last moved
    # (what a node re-sends after a Redis outage).
    Column("read_seq", Integer, nullable=False, default=0, server_default="0"),
    Column("read_at", BigInteger, nullable=True),
    Index("members_by_user", "username", "chat_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("chat_id", String(36), ForeignKey("chats.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("sender", String(32), nullable=True),
    Column("ts", BigInteger, nullable=False),
    Column("client_id", String(64), nullable=True),
    # A file message describes its file here, so history never reads `files`.
    Column("file_id", String(36), nullable=True),
    Column("file_type", String(255), nullable=True),
    Column("file_size", Integer, nullable=True),
)
# Both unique indexes are partial: most messages have no file and many no
# client_id, and an index over NULLs only cost every INSERT an index write
# (in SQLite about a quarter of an append's cost each). NULLs never conflict
# in a unique index, so what is unique is the same.
HAS_CLIENT_ID = messages.c.client_id.isnot(None)
HAS_FILE = messages.c.file_id.isnot(None)
Index(
    "messages_client_ids",
    messages.c.chat_id,
    messages.c.sender,
    messages.c.client_id,
    unique=True,
    sqlite_where=HAS_CLIENT_ID,
    postgresql_where=HAS_CLIENT_ID,
)
Index(
    "messages_file_ids",
    messages.c.file_id,
    unique=True,
    sqlite_where=HAS_FILE,
    postgresql_where=HAS_FILE,
)
# What a user's files take, for the storage quota: read from the index alone.
Index(
    "messages_files_by_sender",
    messages.c.sender,
    messages.c.file_size,
    sqlite_where=HAS_FILE,
    postgresql_where=HAS_FILE,
)

# File contents, in the database so that every node can serve them (platform
# nodes share no disk). The client's file name is only ever a label.
files = Table(
    "files",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("chat_id", String(36), ForeignKey("chats.id"), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Server-wide values that every process sharing the database must agree on.
settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
