"""Storing new messages: one statement each, many to a transaction (group commit).

Concurrent appends queue up while a transaction is in flight; the next one
writes up to ``MAX_BATCH`` of them and commits once. Each caller gets its own
result, and no caller's result is given before the commit.

On SQLite the whole transaction runs as one call on the standard library's
``sqlite3`` (``SqliteWriter``): in place for a small batch when the write lock
is free, else on a thread of its own; never one hand-off between threads per
statement, as through aiosqlite. On PostgreSQL it runs on asyncpg.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatsio.storage.append_sql import (
    LOCK_CHATS,
    Append,
    Result,
    Statements,
    without_loop,
)
from chatsio.storage.database import apply_sqlite_settings

MAX_BATCH = 256
# Under load a commit starts at most every COMMIT_SPACING seconds, and the
# appends that arrive meanwhile share it: a commit (SQLite's WAL write, a
# PostgreSQL round trip and flush) costs about as much as all the statements
# of a small batch. Load means that the last batch held more than one append
# (as PostgreSQL's commit_siblings): one caller appending one message at a
# time never waits, nor does anyone below 1 / COMMIT_SPACING commits a second.
# At 1,000 messages/s in pairs (9,000 deliveries/s in bench/perf), 3 ms rather
# than 1 ms made commits of 3.2 messages instead of 2.0: 5-10 % less server
# CPU, for ~1.2 ms more latency at the median.
COMMIT_SPACING = 0.003
# SqliteWriter: the largest batch written in place on the event loop, and the
# commits made there between two WAL checkpoints on its thread (at four to
# ten pages a commit, up to the WAL_CHECKPOINT_PAGES of the other connections).
IN_PLACE_MAX = 16
CHECKPOINT_EVERY = 400
# A checkpoint runs beside the in-place commits: it takes 5-25 ms here, and
# over 100 ms when the disk is slow to sync, a pause for every message if
# appends waited for it. But the WAL starts over only once a checkpoint has
# copied all of it, which one that runs beside commits rarely does under
# steady load: past WAL_FRAMES_MAX pages (64 MB) the next checkpoint is made
# while nothing writes, so that the WAL is reused from its start.
WAL_FRAMES_MAX = 16000

logger = logging.getLogger(__name__)


def one_message_fault(exc: BaseException) -> bool:
    """An error that belongs to one statement (a constraint, a bad value): the
    batch is then retried one by one so that only that message fails."""
    if isinstance(exc, (IntegrityError, DataError)):
        return True
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)):
        return True
    state = getattr(exc, "sqlstate", None)  # asyncpg: classes 22 and 23
    return isinstance(state, str) and state[:2] in ("22", "23")


class AppendWriter:
    """Queues appends and writes them in as few transactions as it can."""

    def __init__(self, engine: AsyncEngine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.statements = Statements(engine.dialect)
        self.pending: deque[tuple[Append, asyncio.Future]] = deque()
        self.writer: asyncio.Task | None = None
        self.last_commit = float("-inf")  # when the latest commit started
        self.loaded = False  # whether it held more than one append
        self.sqlite = (
            SqliteWriter(engine, self.statements)
            if engine.dialect.name == "sqlite"
            else None
        )

    async def append(self, append: Append) -> Result:
        """Store one message with the next batch; return it and whether it is new."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((append, future))
        if self.writer is None or self.writer.done():
            # Started on the next turn of the loop, by which time every handler
            # that was ready has queued its message too.
            self.writer = asyncio.create_task(self.drain())
        return await future

    async def drain(self) -> None:
        """Write batches until the queue is empty (FIFO: a sender's order holds)."""
        loop = asyncio.get_running_loop()
        while self.pending:
            batch = []
            try:
                wait = self.last_commit + COMMIT_SPACING - loop.time()
                if self.loaded and wait > 0 and len(self.pending) < self.max_batch:
                    await asyncio.sleep(wait)
                count = min(len(self.pending), self.max_batch)
                batch = [self.pending.popleft() for _ in range(count)]
                self.last_commit, self.loaded = loop.time(), count > 1
                await self.commit(batch)
            except BaseException as exc:  # cancelled: nobody may wait forever
                fail(batch, exc)
                fail(self.pending, exc)
                self.pending.clear()
                raise

    async def wait(self) -> None:
        """Let the queued appends finish (before the engine closes)."""
        while self.writer is not None and not self.writer.done():
            await asyncio.wait([self.writer])

    async def close(self) -> None:
        """Let the queued appends finish, then stop the SQLite writer's thread."""
        await self.wait()
        if self.sqlite is not None:
            await self.sqlite.close()

    async def commit(self, batch: list[tuple[Append, asyncio.Future]]) -> None:
        try:
            if self.sqlite is not None:
                results = await self.sqlite.transaction([a for a, _ in batch])
            else:
                results = await self.write_postgres(batch)
        except Exception as exc:
            if len(batch) > 1 and one_message_fault(exc):
                for item in batch:  # find the one at fault; the others go in
                    await self.commit([item])
            else:  # the database itself: every caller hears it
                fail(batch, exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def write_postgres(self, batch: list) -> list[Result]:
        """One transaction on an asyncpg connection of the engine's pool."""
        async with self.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if alone(batch):
                # One INSERT (and its trigger) is atomic by itself: no
                # BEGIN and COMMIT round trips.
                return await self.write_all(driver, batch)
            # The driver's own transaction: SQLAlchemy's would begin only
            # with a statement sent through it.
            async with driver.transaction():
                return await self.write_all(driver, batch)

    async def write_all(self, driver, batch: list) -> list[Result]:
        chat_ids = sorted({append.chat_id for append, _ in batch})
        if len(chat_ids) > 1:
            await driver.execute(LOCK_CHATS, chat_ids)
        return [await self.write(driver, append) for append, _ in batch]

    async def write(self, driver, append: Append) -> Result:
        """``Statements.write`` on asyncpg."""
        return await self.statements.write(
            append, lambda statement, params: statement.rows(driver, params)
        )


class SqliteWriter:
    """A SQLite file's appends, a whole transaction (BEGIN IMMEDIATE, the
    statements, COMMIT) at a time, without aiosqlite's hop per statement.

    A small batch without a file runs in place, on a connection of the event
    loop's own, when the write lock is free: ~100 µs of SQLite cost less than
    a hand-off to a thread and back. That connection never waits for the lock
    (busy_timeout 0) and never checkpoints the WAL by itself, so the loop is
    never blocked for longer than its own statements take. A batch that is
    large, carries a file, or finds the lock taken goes to a thread with its
    own connection, which waits for the lock as every other connection to the
    file does (see ``database``), and checkpoints the WAL every
    CHECKPOINT_EVERY commits made in place (see WAL_FRAMES_MAX).
    """

    def __init__(self, engine: AsyncEngine, statements: Statements) -> None:
        # The file and options the engine's own connections open (a path, or
        # a URI with its parameters); a memory database never gets here, as
        # ``create_engine``'s pool settings refuse one.
        self.file, self.options = engine.dialect.create_connect_args(engine.url)
        self.statements = statements
        self.connection: sqlite3.Connection | None = None
        self.in_place: sqlite3.Connection | None = None
        self.commits_in_place = 0
        self.checkpointing: asyncio.Future | None = None  # the one running
        self.wal_frames = 0  # pages in the WAL at the last checkpoint
        self.closed = False
        self.executor = ThreadPoolExecutor(  # the thread starts with the first call
            max_workers=1, thread_name_prefix="chatsio-sqlite-writer"
        )

    async def transaction(self, appends: list[Append]) -> list[Result]:
        loop = asyncio.get_running_loop()
        checkpointing = self.checkpointing
        if self.commits_in_place >= CHECKPOINT_EVERY and (
            checkpointing is None or checkpointing.done()
        ):
            self.commits_in_place = 0
            checkpoint = loop.run_in_executor(self.executor, self.checkpoint_wal)
            if self.wal_frames < WAL_FRAMES_MAX:
                self.checkpointing = checkpoint
            elif await checkpoint:  # while nothing writes, so it copies all:
                self.wal_frames = 0  # the next commit starts the WAL over
        if len(appends) <= IN_PLACE_MAX and all(a.file is None for a in appends):
            if self.in_place is None:  # opened on the thread: it may wait
                self.in_place = await loop.run_in_executor(
                    self.executor, self.connect_in_place
                )
            results = self.write_in_place(appends)
            if results is not None:
                return results
        return await loop.run_in_executor(self.executor, self.write_all, appends)

    async def close(self) -> None:
        """Close the connections on the thread, then end the thread (once)."""
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self.disconnect)
        self.executor.shutdown(wait=True)  # idle by now: a join, not a wait

    def open_connection(self, **options) -> sqlite3.Connection:
        """A connection as the engine's, made on the writer's thread; BEGIN
        is issued by the writer."""
        options = {**self.options, "isolation_level": None, **options}
        connection = sqlite3.connect(*self.file, **options)
        apply_sqlite_settings(connection)
        return connection

    def connect(self) -> sqlite3.Connection:
        self.connection = self.open_connection()
        return self.connection

    def connect_in_place(self) -> sqlite3.Connection:
        """The event loop's connection: made here, used only on the loop."""
        connection = self.open_connection(check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection

    def disconnect(self) -> None:
        for connection in (self.connection, self.in_place):
            if connection is not None:
                connection.close()
        self.connection = self.in_place = None

    def write_all(self, appends: list[Append]) -> list[Result]:
        """One transaction, on the writer's thread."""
        connection = self.connection or self.connect()
        connection.execute("BEGIN IMMEDIATE")
        return self.finish(connection, appends)

    def write_in_place(self, appends: list[Append]) -> list[Result] | None:
        """One transaction on the loop's connection; None, having done
        nothing, when another connection holds the write lock."""
        connection = self.in_place
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return None
            raise
        results = self.finish(connection, appends)
        self.commits_in_place += 1
        return results

    def checkpoint_wal(self) -> bool:
        """Copy the WAL into the database without waiting on anyone (PASSIVE);
        True if it copied all of it. The WAL starts over at the next commit
        only if that one begins after such a checkpoint."""
        try:
            _, frames, copied = (
                (self.connection or self.connect())
                .execute("PRAGMA wal_checkpoint(PASSIVE)")
                .fetchone()
            )
        except sqlite3.Error as exc:  # the next one may succeed; appends go on
            logger.warning("SQLite WAL checkpoint failed: %s", exc)
            return False
        self.wal_frames = frames
        return copied == frames

    def finish(self, connection: sqlite3.Connection, appends: list[Append]) -> list:
        """The statements and COMMIT of a transaction ``connection`` began."""
        try:
            results = [self.write(connection, append) for append in appends]
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # a failed COMMIT may leave it open
                connection.execute("ROLLBACK")
            raise
        return results

    def write(self, connection: sqlite3.Connection, append: Append) -> Result:
        """``Statements.write`` on sqlite3, on this thread."""
        return without_loop(
            self.statements.write(
                append,
                lambda statement, params: statement.rows_sqlite(connection, params),
            )
        )


def alone(batch: list[tuple[Append, asyncio.Future]]) -> bool:
    """A batch of one message without a file: a single statement."""
    return len(batch) == 1 and batch[0][0].file is None


def fail(batch, exc: BaseException) -> None:
    """Give every waiting caller of ``batch`` the error."""
    for _, future in batch:
        if not future.done():
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
