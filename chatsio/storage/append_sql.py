"""The SQL of an append, built with SQLAlchemy Core and compiled once, and the
append itself, which both drivers (asyncpg, sqlite3) run."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Text,
    bindparam,
    exists,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from chatsio.storage import tables
from chatsio.storage.records import FileRef, Message

chats, members, messages, files = (
    tables.chats,
    tables.members,
    tables.messages,
    tables.files,
)
COLUMNS = [
    "chat_id",
    "seq",
    "kind",
    "text",
    "sender",
    "ts",
    "client_id",
    "file_id",
    "file_type",
    "file_size",
]
CHAT = bindparam("p_chat", type_=String)
SENDER = bindparam("p_sender", type_=String)
CLIENT = bindparam("p_client", type_=String)
IS_MEMBER = exists().where(members.c.chat_id == CHAT, members.c.username == SENDER)
# PostgreSQL: a batch over several chats locks them first, in one order, so
# that two nodes' batches never wait on each other's rows in a cycle.
LOCK_CHATS = "SELECT id FROM chats WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE"


@dataclass(frozen=True, slots=True)
class Append:
    chat_id: str
    kind: str
    text: str
    sender: str | None
    client_id: str | None
    now: int
    file: FileRef | None = None
    content: bytes = b""

    def params(self) -> dict:
        file = self.file
        return {
            "p_chat": self.chat_id,
            "p_kind": self.kind,
            "p_text": self.text,
            "p_sender": self.sender,
            "p_ts": self.now,
            "p_client": self.client_id,
            "p_file_id": file and file.file_id,
            "p_file_type": file and file.type,
            "p_file_size": file and file.size,
        }


Result = tuple[Message | None, bool]
# Runs one statement with its parameters on a connection: its rows.
Rows = Callable[["DriverStatement", dict], Awaitable[list]]
T = TypeVar("T")


def to_message(row) -> Message:
    """A ``messages`` row, its columns in table order (extra ones after)."""
    file_id, file_type, file_size = row[7:10]
    file = None if file_id is None else FileRef(file_id, row[3], file_type, file_size)
    return Message(*row[:7], file)


def stored(append: Append, seq: int) -> Message:
    """The message ``append`` stored as ``seq``."""
    return Message(
        append.chat_id,
        seq,
        append.kind,
        append.text,
        append.sender,
        append.now,
        append.client_id,
        append.file,
    )


class DriverStatement:
    """A statement compiled once to the driver's SQL, run without SQLAlchemy:
    one asyncpg round trip (or one sqlite3 call) instead of SQLAlchemy's
    several, and no per-call compile or cache look-up."""

    def __init__(self, statement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = compiled.params
        self.order = compiled.positiontup

    def values(self, params: dict) -> list:
        return [
            params[name] if name in params else self.defaults[name]
            for name in self.order
        ]

    async def rows(self, driver, params: dict) -> list:
        """Run on an asyncpg connection."""
        return await driver.fetch(self.sql, *self.values(params))

    async def rows_sqlite(self, connection: sqlite3.Connection, params: dict) -> list:
        """Run on a stdlib ``sqlite3`` connection: at once, never suspending
        (see ``without_loop``)."""
        return connection.execute(self.sql, self.values(params)).fetchall()


def without_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (its awaits are ``rows_sqlite``'s)
    to its end on this thread, where there is no event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a coroutine run without an event loop suspended")


def insert_message(dialect: Dialect, *, by_member: bool) -> DriverStatement:
    """INSERT … SELECT last_seq + 1 FROM chats WHERE active (AND a member).

    A repeated client_id stores nothing, so the trigger takes no seq.
    """
    source = (
        select(
            chats.c.id,
            chats.c.last_seq + 1,
            bindparam("p_kind", type_=String),
            bindparam("p_text", type_=Text),
            SENDER,
            bindparam("p_ts", type_=BigInteger),
            CLIENT,
            bindparam("p_file_id", type_=String),
            bindparam("p_file_type", type_=String),
            bindparam("p_file_size", type_=Integer),
        )
        .where(chats.c.id == CHAT, chats.c.active)
        # PostgreSQL: wait for, then read, the newest last_seq. SQLite
        # renders nothing here; its BEGIN IMMEDIATE already serializes.
        .with_for_update(of=chats)
    )
    if by_member:
        source = source.where(IS_MEMBER)
    insert = (postgresql if dialect.name == "postgresql" else sqlite).insert
    statement = (
        insert(messages)
        .from_select(COLUMNS, source)
        .on_conflict_do_nothing(
            index_elements=["chat_id", "sender", "client_id"],
            index_where=tables.HAS_CLIENT_ID,
        )
        .returning(messages.c.seq)
    )
    return DriverStatement(statement, dialect)


class Statements:
    """Every statement of an append, compiled once per store."""

    def __init__(self, dialect: Dialect) -> None:
        self.by_member = insert_message(dialect, by_member=True)
        self.by_system = insert_message(dialect, by_member=False)
        earlier = select(messages).where(
            messages.c.chat_id == CHAT,
            messages.c.sender == SENDER,
            messages.c.client_id == CLIENT,
            exists().where(chats.c.id == CHAT, chats.c.active),
            IS_MEMBER,
        )
        self.earlier = DriverStatement(earlier, dialect)
        file = files.insert().values(
            id=bindparam("p_file_id", type_=String),
            chat_id=CHAT,
            data=bindparam("p_data", type_=LargeBinary),
        )
        self.file = DriverStatement(file, dialect)

    async def write(self, append: Append, rows: Rows) -> Result:
        """One append, whatever the driver (``rows`` runs a statement on it):
        one INSERT takes the seq, checks chat and member, and skips repeats;
        then the file's bytes go in, or a repeat reads back the message it
        repeats."""
        params = append.params()
        insert = self.by_system if append.sender is None else self.by_member
        inserted = await rows(insert, params)
        if inserted:
            if append.file is not None:
                params["p_data"] = append.content
                await rows(self.file, params)
            return stored(append, inserted[0][0]), True
        if append.client_id is not None and append.sender is not None:
            earlier = await rows(self.earlier, params)
            if earlier:
                return to_message(earlier[0]), False
        return None, False
