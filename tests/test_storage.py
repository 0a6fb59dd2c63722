"""Storage against real SQLite and PostgreSQL databases, without the server."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from pathlib import Path
from unittest.mock import ANY

import pytest

from chatsio.config import database_url
from chatsio.errors import Conflict
from chatsio.protocol import KIND_FILE, KIND_MESSAGE, KIND_NOTIFICATION, now_ms
from chatsio.storage import Storage, append_sql, appends, database, open_storage
from chatsio.storage.records import Access, Chat, FileRef, Message, User
from chatsio.storage.tables import chats, messages

Opener = Callable[[], Awaitable[Storage]]
WRITERS, PER_WRITER = 2, 200


@pytest.fixture
async def open_store(any_database_url: str) -> AsyncIterator[Opener]:
    """Open any number of Storage objects on one database; close them all after."""
    opened: list[Storage] = []

    async def opener() -> Storage:
        storage = await open_storage(any_database_url)
        opened.append(storage)
        return storage

    yield opener
    for storage in opened:
        await storage.close()


@pytest.fixture
async def store(open_store: Opener) -> Storage:
    return await open_store()


async def add_users(storage: Storage, *names: str) -> None:
    for name in names:
        await storage.users.create(
            name, f"hash-of-{name}", is_admin=False, now=now_ms()
        )


async def new_chat(
    storage: Storage, *names: str, title: str | None = None, now: int | None = None
) -> Chat:
    return await storage.chats.create(
        str(uuid.uuid4()),
        title,
        names[0],
        list(names),
        now_ms() if now is None else now,
    )


async def post(
    storage: Storage, chat_id: str, text: str, sender: str | None = "alice", **extra
) -> tuple[Message | None, bool]:
    return await storage.messages.append(
        chat_id,
        kind=extra.pop("kind", KIND_MESSAGE),
        text=text,
        sender=sender,
        client_id=extra.pop("client_id", None),
        now=now_ms(),
    )


async def post_file(
    storage: Storage, chat_id: str, file: FileRef, content: bytes
) -> tuple[Message | None, bool]:
    return await storage.messages.append(
        chat_id,
        kind=KIND_FILE,
        text=file.name,
        sender="alice",
        client_id=None,
        now=now_ms(),
        file=file,
        content=content,
    )


async def stored(storage: Storage, chat_id: str) -> list[Message]:
    return await storage.messages.after(chat_id, 0, 10_000)


# Schema


async def test_schema_is_created_by_two_storages_opening_at_once(
    open_store: Opener,
) -> None:
    first, second = await asyncio.gather(open_store(), open_store())
    await add_users(first, "alice")
    alice = User("alice", "hash-of-alice", False, ANY)
    assert await second.users.get("alice") == alice


async def test_opening_an_existing_schema_again_keeps_its_data(
    open_store: Opener,
) -> None:
    first = await open_store()
    await add_users(first, "alice")
    chat = await new_chat(first, "alice")
    await post(first, chat.id, "hello")
    await first.close()
    again = await open_store()
    await again.ping()
    assert await again.users.get("alice") is not None
    assert [m.text for m in await stored(again, chat.id)] == ["hello"]


# Users


async def test_users_create_get_and_unknown(store: Storage) -> None:
    created = await store.users.create("alice", "h1", is_admin=True, now=now_ms())
    assert created == User("alice", "h1", True, created.token_key)
    await add_users(store, "bob")
    assert await store.users.get("alice") == created
    bob = await store.users.get("bob")
    assert bob == User("bob", "hash-of-bob", False, ANY)
    assert created.token_key and bob.token_key != created.token_key
    assert await store.users.get("carol") is None
    unknown = await store.users.unknown(["zed", "alice", "carol", "bob"])
    assert unknown == ["zed", "carol"]
    assert await store.users.unknown([]) == []


async def test_creating_a_taken_username_is_a_conflict(store: Storage) -> None:
    await add_users(store, "alice")
    with pytest.raises(Conflict):
        await store.users.create("alice", "other", is_admin=True, now=now_ms())
    assert await store.users.get("alice") == User("alice", "hash-of-alice", False, ANY)


async def test_racing_registrations_of_one_name_let_exactly_one_win(
    open_store: Opener,
) -> None:
    first, second = await open_store(), await open_store()
    results = await asyncio.gather(
        first.users.create("alice", "h1", is_admin=False, now=now_ms()),
        second.users.create("alice", "h2", is_admin=False, now=now_ms()),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, User)]
    assert len(winners) == 1, results
    assert [type(r) for r in results if not isinstance(r, User)] == [Conflict]
    assert await first.users.get("alice") == winners[0]


async def test_concurrent_setting_callers_agree_on_the_first_stored_value(
    open_store: Opener,
) -> None:
    first, second = await open_store(), await open_store()
    values = await asyncio.gather(
        first.users.setting("token_secret", "from-first"),
        second.users.setting("token_secret", "from-second"),
    )
    assert values[0] == values[1], values
    assert values[0] in ("from-first", "from-second")
    assert await first.users.setting("token_secret", "later") == values[0]
    assert await first.users.setting("other_key", "x") == "x"


# Chats


async def test_chats_create_and_get(store: Storage) -> None:
    await add_users(store, "alice", "bob", "carol")
    chat = await new_chat(store, "alice", "bob", "carol", title="plans", now=1234)
    assert chat.title == "plans" and chat.created_by == "alice"
    assert chat.active and chat.created_at == 1234
    got = await store.chats.get(chat.id)
    names = ("alice", "bob", "carol")
    nothing_read = dict.fromkeys(names, 0)
    assert got == Chat(chat.id, "plans", names, "alice", 1234, True, nothing_read)
    assert got == chat
    assert await store.chats.get(str(uuid.uuid4())) is None


async def test_chats_for_user_lists_active_first_then_newest(store: Storage) -> None:
    await add_users(store, "alice", "bob", "carol")
    oldest = await new_chat(store, "alice", "bob", now=1000)
    middle = await new_chat(store, "carol", "alice", now=2000)
    newest = await new_chat(store, "alice", "carol", now=3000)
    await new_chat(store, "bob", "carol", now=4000)  # not alice's
    assert await store.messages.end_chat(newest.id, "ended", now_ms()) is not None

    listed = await store.chats.for_user("alice")
    assert [c.id for c in listed] == [middle.id, oldest.id, newest.id]
    assert [c.active for c in listed] == [True, True, False]
    assert listed[0].members == ("alice", "carol")
    active = await store.chats.for_user("alice", active_only=True)
    assert [c.id for c in active] == [middle.id, oldest.id]
    assert await store.chats.for_user("nobody") == []


async def test_access_reports_existence_membership_and_activity(
    store: Storage,
) -> None:
    await add_users(store, "alice", "bob", "eve")
    chat = await new_chat(store, "alice", "bob")
    access = store.chats.access
    assert await access(chat.id, "bob") == Access(True, True, True)
    assert await access(chat.id, "eve") == Access(True, False, True)
    assert await access(chat.id, "ghost") == Access(True, False, True)
    assert await access(str(uuid.uuid4()), "alice") == Access(False, False, False)
    await store.messages.end_chat(chat.id, "ended", now_ms())
    assert await access(chat.id, "alice") == Access(True, True, False)


# Messages


async def test_append_numbers_messages_from_one(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    results = [await post(store, chat.id, f"m{i}") for i in range(3)]
    assert [(m.seq, created) for m, created in results] == [
        (1, True),
        (2, True),
        (3, True),
    ]
    first = results[0][0]
    assert (first.chat_id, first.kind, first.text, first.sender) == (
        chat.id,
        KIND_MESSAGE,
        "m0",
        "alice",
    )
    assert await stored(store, chat.id) == [m for m, _ in results]
    other = await new_chat(store, "bob", "alice")
    message, _ = await post(store, other.id, "elsewhere", sender="bob")
    assert message.seq == 1  # seq is per chat


async def test_two_writers_with_concurrent_appends_get_gapless_unique_seqs(
    open_store: Opener,
) -> None:
    writers = [await open_store() for _ in range(WRITERS)]
    await add_users(writers[0], "alice", "bob")
    chat = await new_chat(writers[0], "alice", "bob")
    sends = [
        post(store, chat.id, f"w{w}-{i}", sender=("alice", "bob")[i % 2])
        for i in range(PER_WRITER)
        for w, store in enumerate(writers)
    ]
    results = await asyncio.wait_for(asyncio.gather(*sends), 120)

    total = WRITERS * PER_WRITER
    assert all(created for _, created in results)
    returned = sorted(message.seq for message, _ in results)
    assert returned == list(range(1, total + 1))
    messages = await stored(writers[1], chat.id)
    assert [m.seq for m in messages] == list(range(1, total + 1))
    assert {m.seq: m.text for m in messages} == {m.seq: m.text for m, _ in results}
    after, _ = await post(writers[1], chat.id, "next")
    assert after.seq == total + 1


async def test_same_client_id_returns_the_first_message(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    first, created = await post(store, chat.id, "once", client_id="c-1")
    assert created and first.seq == 1 and first.client_id == "c-1"
    again, created = await post(store, chat.id, "once again", client_id="c-1")
    assert (again, created) == (first, False)
    # Another sender, or another client_id, is a new message.
    bobs, created = await post(store, chat.id, "bob", sender="bob", client_id="c-1")
    assert created and bobs.seq == 2
    other, created = await post(store, chat.id, "other", client_id="c-2")
    assert created and other.seq == 3
    assert await stored(store, chat.id) == [first, bobs, other]
    assert (await post(store, chat.id, "after"))[0].seq == 4  # no gap left behind


async def test_racing_duplicates_store_one_message(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    await add_users(first, "alice", "bob")
    chat = await new_chat(first, "alice", "bob")
    racers = [
        post(store, chat.id, f"try {i}", client_id="same")
        for i in range(5)
        for store in (first, second)
    ]
    results = await asyncio.wait_for(asyncio.gather(*racers), 60)

    assert sum(created for _, created in results) == 1, results
    winner = next(message for message, created in results if created)
    assert all(message == winner for message, _ in results)
    assert await stored(second, chat.id) == [winner]
    assert winner.seq == 1
    assert (await post(first, chat.id, "next"))[0].seq == 2  # no gap left behind


async def test_append_by_a_non_member_stores_nothing(store: Storage) -> None:
    await add_users(store, "alice", "bob", "eve")
    chat = await new_chat(store, "alice", "bob")
    await post(store, chat.id, "hi")
    assert await post(store, chat.id, "let me in", sender="eve") == (None, False)
    assert await post(store, chat.id, "x", sender="ghost", client_id="c") == (
        None,
        False,
    )
    assert await post(store, str(uuid.uuid4()), "nowhere") == (None, False)
    assert [m.seq for m in await stored(store, chat.id)] == [1]
    assert (await post(store, chat.id, "next"))[0].seq == 2


async def test_end_chat_stores_a_notice_once_and_stops_appends(
    store: Storage,
) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    await post(store, chat.id, "one")
    await post(store, chat.id, "two", sender="bob")

    notice = await store.messages.end_chat(chat.id, "alice ended the chat", 5000)
    assert notice == Message(
        chat.id, 3, KIND_NOTIFICATION, "alice ended the chat", None, 5000, None
    )
    assert (await store.chats.get(chat.id)).active is False
    assert await store.messages.end_chat(chat.id, "again", now_ms()) is None
    assert await post(store, chat.id, "too late") == (None, False)
    notification = await post(store, chat.id, "n", sender=None, kind=KIND_NOTIFICATION)
    assert notification == (None, False)
    assert [m.seq for m in await stored(store, chat.id)] == [1, 2, 3]
    assert await store.messages.end_chat(str(uuid.uuid4()), "x", now_ms()) is None


async def test_system_notification_needs_no_membership(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    notice, created = await post(
        store, chat.id, "maintenance", sender=None, kind=KIND_NOTIFICATION
    )
    assert created and notice.seq == 1 and notice.sender is None


async def test_before_and_after_page_oldest_first(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    for i in range(1, 11):
        await post(store, chat.id, f"m{i}")
    messages = store.messages

    async def seqs(page: Awaitable[list[Message]]) -> list[int]:
        return [m.seq for m in await page]

    assert await seqs(messages.before(chat.id, None, 3)) == [8, 9, 10]
    assert await seqs(messages.before(chat.id, 8, 3)) == [5, 6, 7]
    assert await seqs(messages.before(chat.id, 3, 50)) == [1, 2]
    assert await seqs(messages.before(chat.id, 1, 50)) == []
    assert await seqs(messages.before(chat.id, None, 50)) == list(range(1, 11))
    assert await seqs(messages.after(chat.id, 0, 3)) == [1, 2, 3]
    assert await seqs(messages.after(chat.id, 3, 3)) == [4, 5, 6]
    assert await seqs(messages.after(chat.id, 8, 50)) == [9, 10]
    assert await seqs(messages.after(chat.id, 10, 50)) == []
    assert await messages.after(str(uuid.uuid4()), 0, 50) == []
    page = await messages.after(chat.id, 4, 1)
    assert [(m.seq, m.text) for m in page] == [(5, "m5")]


# Group commit


def count_commits(storage: Storage) -> list[int]:
    """Record the size of every batch the store's writer commits."""
    writer = storage.messages.writer
    sizes: list[int] = []
    commit = writer.commit

    async def counted(batch):
        sizes.append(len(batch))
        await commit(batch)

    writer.commit = counted
    return sizes


async def test_concurrent_appends_share_one_commit_and_fail_alone(
    store: Storage,
) -> None:
    senders = ("alice", "bob", "carol", "dave")
    await add_users(store, *senders, "eve")
    chat = await new_chat(store, *senders)
    ended = await new_chat(store, "alice", "bob")
    await store.messages.end_chat(ended.id, "over", now_ms())
    sizes = count_commits(store)
    sends = [
        post(store, chat.id, f"{s}-{i}", sender=s) for i in range(15) for s in senders
    ]
    sends.insert(7, post(store, chat.id, "let me in", sender="eve"))
    sends.insert(20, post(store, ended.id, "too late", sender="alice"))
    results = await asyncio.wait_for(asyncio.gather(*sends), 60)

    assert sizes == [62]
    assert results[7] == (None, False) and results[20] == (None, False)
    good = [m for m, created in results if created]
    assert len(good) == 60
    assert sorted(m.seq for m in good) == list(range(1, 61))
    for sender in senders:  # each sender's messages keep the order they came in
        theirs = [m for m in good if m.sender == sender]
        assert [m.text for m in theirs] == [f"{sender}-{i}" for i in range(15)]
        assert [m.seq for m in theirs] == sorted(m.seq for m in theirs)
    assert await stored(store, chat.id) == sorted(good, key=lambda m: m.seq)
    assert (await post(store, chat.id, "next"))[0].seq == 61


async def test_a_failing_statement_fails_only_its_own_append(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    file = FileRef(str(uuid.uuid4()), "a.txt", "text/plain", 1)

    def send_file() -> Awaitable[tuple[Message | None, bool]]:
        return post_file(store, chat.id, file, b"x")

    first, _ = await send_file()
    sizes = count_commits(store)
    sends = [post(store, chat.id, f"m{i}", sender="bob") for i in range(5)]
    sends.insert(2, send_file())  # the same file id again: a unique violation
    results = await asyncio.gather(*sends, return_exceptions=True)

    assert isinstance(results.pop(2), Exception)
    assert sizes[0] == 6  # tried together, then one by one
    assert [m.seq for m, _ in results] == [2, 3, 4, 5, 6]
    assert [m.seq for m in await stored(store, chat.id)] == [1, 2, 3, 4, 5, 6]
    assert first.file == file


async def test_repeated_client_id_in_one_batch_stores_one_message(
    store: Storage,
) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    sizes = count_commits(store)
    results = await asyncio.gather(
        post(store, chat.id, "before", sender="bob"),
        post(store, chat.id, "once", client_id="same"),
        post(store, chat.id, "between", sender="bob"),
        post(store, chat.id, "once", client_id="same"),
        post(store, chat.id, "after", sender="bob"),
    )
    assert sizes == [5]
    (first, created), (again, repeated) = results[1], results[3]
    assert created and not repeated and again == first
    assert [m.seq for m, _ in results] == [1, 2, 3, 2, 4]
    assert [m.text for m in await stored(store, chat.id)] == [
        "before",
        "once",
        "between",
        "after",
    ]


async def test_batches_are_bounded(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    store.messages.writer.max_batch = 4
    sizes = count_commits(store)
    results = await asyncio.gather(*(post(store, chat.id, f"m{i}") for i in range(10)))
    assert sizes == [4, 4, 2]
    assert [m.seq for m, _ in results] == list(range(1, 11))


async def test_appends_soon_after_a_loaded_commit_share_the_next_one(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a commit of several appends, commits are spaced out (here 0.3 s
    apart, to be sure of the timing): appends made on different turns of the
    loop meanwhile go together. One caller appending one message at a time,
    and an append after a quiet spell, do not wait."""
    monkeypatch.setattr(appends, "COMMIT_SPACING", 0.3)
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    sizes = count_commits(store)
    started = time.monotonic()
    for i in range(3):
        await post(store, chat.id, f"one at a time {i}")
    assert time.monotonic() - started < 0.25
    assert sizes == [1, 1, 1]

    await asyncio.gather(*(post(store, chat.id, f"together {i}") for i in range(2)))
    second = asyncio.ensure_future(post(store, chat.id, "second"))
    for _ in range(3):
        await asyncio.sleep(0)  # the writer takes "second" alone without spacing
    third = asyncio.ensure_future(post(store, chat.id, "third"))
    await asyncio.wait_for(asyncio.gather(second, third), 10)
    assert sizes == [1, 1, 1, 2, 2]

    await asyncio.sleep(0.35)
    started = time.monotonic()
    await post(store, chat.id, "after a pause")
    assert time.monotonic() - started < 0.25
    assert sizes == [1, 1, 1, 2, 2, 1]
    assert [m.seq for m in await stored(store, chat.id)] == list(range(1, 9))


async def test_a_database_made_before_the_seq_trigger_is_upgraded(
    open_store: Opener,
) -> None:
    old = await open_store()
    await add_users(old, "alice", "bob")
    chat = await new_chat(old, "alice", "bob")
    async with old.engine.begin() as conn:
        # As the previous version left it: no trigger, and last_seq bumped
        # by the writer itself.
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql(
                "DROP TRIGGER IF EXISTS messages_take_seq ON messages"
            )
            await conn.exec_driver_sql("DROP FUNCTION IF EXISTS chatsio_take_seq()")
        else:
            await conn.exec_driver_sql("DROP TRIGGER IF EXISTS messages_take_seq")
        # and its client_id index, over NULLs too
        await conn.exec_driver_sql("DROP INDEX messages_client_ids")
        await conn.exec_driver_sql(
            "CREATE UNIQUE INDEX messages_by_client_id"
            " ON messages (chat_id, sender, client_id)"
        )
        for seq in (1, 2):
            await insert_row(conn, chat.id, seq, text=f"old {seq}", client_id=f"c{seq}")
        await conn.execute(
            chats.update().where(chats.c.id == chat.id).values(last_seq=2)
        )
    await old.close()

    new = await open_store()
    message, created = await post(new, chat.id, "new", client_id="c3")
    assert created and message.seq == 3
    assert await post(new, chat.id, "again", client_id="c3") == (message, False)
    assert await post(new, chat.id, "old again", client_id="c1") == (
        (await stored(new, chat.id))[0],
        False,
    )
    assert (await post(new, chat.id, "next"))[0].seq == 4
    assert [m.seq for m in await stored(new, chat.id)] == [1, 2, 3, 4]
    indexes = await index_definitions(new)
    assert "messages_by_client_id" not in indexes
    assert partial(indexes["messages_client_ids"], "client_id")


async def test_unique_indexes_leave_out_messages_without_client_id_or_file(
    store: Storage,
) -> None:
    indexes = await index_definitions(store)
    assert partial(indexes["messages_client_ids"], "client_id")
    assert partial(indexes["messages_file_ids"], "file_id")
    # Still unique where they count; and NULLs never conflict.
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    first, _ = await post(store, chat.id, "one", client_id="c1")
    assert await post(store, chat.id, "two", client_id="c1") == (first, False)
    assert [(await post(store, chat.id, "x"))[1] for _ in range(2)] == [True, True]
    file_id = str(uuid.uuid4())
    with pytest.raises(Exception, match=r"(?i)unique"):
        async with store.engine.begin() as conn:
            for seq in (90, 91):
                await insert_row(
                    conn, chat.id, seq, kind=KIND_FILE, text="a.txt", file_id=file_id
                )


async def insert_row(conn, chat_id: str, seq: int, **columns) -> None:
    """A ``messages`` row written directly, as an earlier version or a
    broken writer might have left it; by alice, now, unless ``columns`` say."""
    values = {"kind": KIND_MESSAGE, "sender": "alice", "ts": now_ms(), **columns}
    await conn.execute(messages.insert().values(chat_id=chat_id, seq=seq, **values))


async def index_definitions(storage: Storage) -> dict[str, str]:
    """The ``messages`` table's indexes by name, as their CREATE statements."""
    async with storage.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = (
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE tablename = 'messages'"
            )
        else:
            query = (
                "SELECT name, sql FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = 'messages' AND sql IS NOT NULL"
            )
        rows = (await conn.exec_driver_sql(query)).all()
    return {name: definition for name, definition in rows}


def partial(definition: str, column: str) -> bool:
    """Whether an index's CREATE statement leaves out rows where ``column`` is
    NULL (PostgreSQL writes the condition in brackets)."""
    return f"WHERE {column} IS NOT NULL" in definition.replace("(", "")


async def test_two_writers_batching_over_the_same_chats_never_deadlock(
    open_store: Opener,
) -> None:
    first, second = await open_store(), await open_store()
    await add_users(first, "alice", "bob")
    chats_ = [await new_chat(first, "alice", "bob") for _ in range(4)]
    # Each writer's batches name the chats in a different order.
    sends = [
        post(store, chat.id, f"{n}-{i}")
        for i in range(30)
        for n, (store, order) in enumerate(((first, chats_), (second, chats_[::-1])))
        for chat in order
    ]
    results = await asyncio.wait_for(asyncio.gather(*sends), 60)
    assert all(created for _, created in results)
    for chat in chats_:
        assert [m.seq for m in await stored(first, chat.id)] == list(range(1, 61))


async def test_a_cancelled_caller_leaves_the_others_alone(store: Storage) -> None:
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    sends = [asyncio.ensure_future(post(store, chat.id, f"m{i}")) for i in range(5)]
    await asyncio.sleep(0)  # every append is queued
    sends[1].cancel()
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert isinstance(results.pop(1), asyncio.CancelledError)
    # Cancelled after it was queued: it may or may not be stored, but the
    # others are, and nothing is left with a gap.
    seqs = [m.seq for m in await stored(store, chat.id)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 4
    assert sorted(m.seq for m, _ in results) == sorted(
        m.seq for m in await stored(store, chat.id) if m.text != "m1"
    )


async def test_appends_racing_the_end_of_their_chat_leave_no_gap(
    store: Storage,
) -> None:
    # On SQLite the appends and end_chat use two connections in this process.
    await add_users(store, "alice", "bob")
    chat = await new_chat(store, "alice", "bob")
    sends = [post(store, chat.id, f"m{i}") for i in range(40)]
    sends.insert(20, store.messages.end_chat(chat.id, "over", now_ms()))
    results = await asyncio.wait_for(asyncio.gather(*sends), 60)
    notice = results.pop(20)
    seqs = [m.seq for m in await stored(store, chat.id)]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == notice.seq
    assert sorted(m.seq for m, created in results if created) == seqs[:-1]


async def test_closing_the_store_ends_its_writer_thread(
    open_store: Opener,
) -> None:
    def writer_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("chatsio-sqlite")]

    before = writer_threads()
    storage = await open_store()
    await add_users(storage, "alice", "bob")
    chat = await new_chat(storage, "alice", "bob")
    await asyncio.gather(*(post(storage, chat.id, f"m{i}") for i in range(3)))
    if storage.engine.dialect.name == "sqlite":
        assert len(writer_threads()) == len(before) + 1
    await storage.close()
    assert writer_threads() == before
    await storage.close()  # a second close is harmless


# SQLite: small batches in place, the rest on the writer's thread


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Storage]:
    storage = await open_storage(sqlite_url)
    yield storage
    await storage.close()


def record_threads(storage: Storage) -> list[tuple[str, int]]:
    """Record, per SQLite transaction, the thread it ran on and its size."""
    writer = storage.messages.writer.sqlite
    calls: list[tuple[str, int]] = []
    for name in ("write_all", "write_in_place"):
        method = getattr(writer, name)

        def recorded(appends, method=method):
            calls.append((threading.current_thread().name, len(appends)))
            return method(appends)

        setattr(writer, name, recorded)
    return calls


async def test_small_batches_are_written_in_place_large_ones_on_the_thread(
    sqlite_store: Storage,
) -> None:
    await add_users(sqlite_store, "alice", "bob")
    chat = await new_chat(sqlite_store, "alice", "bob")
    calls = record_threads(sqlite_store)
    await post(sqlite_store, chat.id, "one")
    await asyncio.gather(*(post(sqlite_store, chat.id, f"a{i}") for i in range(16)))
    await asyncio.gather(*(post(sqlite_store, chat.id, f"b{i}") for i in range(17)))
    loop = threading.current_thread().name
    assert calls == [(loop, 1), (loop, 16), ("chatsio-sqlite-writer_0", 17)]
    assert [m.seq for m in await stored(sqlite_store, chat.id)] == list(range(1, 35))


async def test_a_file_is_written_on_the_thread(sqlite_store: Storage) -> None:
    await add_users(sqlite_store, "alice", "bob")
    chat = await new_chat(sqlite_store, "alice", "bob")
    calls = record_threads(sqlite_store)
    file = FileRef(str(uuid.uuid4()), "a.bin", "application/octet-stream", 3)
    message, created = await post_file(sqlite_store, chat.id, file, b"abc")
    assert created and message.file == file
    assert calls == [("chatsio-sqlite-writer_0", 1)]


async def test_a_database_named_by_a_uri_takes_the_sqlite_writer(
    tmp_path: Path,
) -> None:
    """``sqlite:///file:...?uri=true`` (with SQLite's URI parameters): the
    appends take the same writer as a plain path's, on the engine's file."""
    path = tmp_path / "chatsio.db"
    storage = await open_storage(
        database_url(f"sqlite:///file:{path}?mode=rwc&uri=true")
    )
    try:
        await add_users(storage, "alice", "bob")
        chat = await new_chat(storage, "alice", "bob")
        calls = record_threads(storage)
        await post(storage, chat.id, "one")
        await asyncio.gather(*(post(storage, chat.id, f"a{i}") for i in range(17)))
        loop = threading.current_thread().name
        assert calls == [(loop, 1), ("chatsio-sqlite-writer_0", 17)]
        assert [m.seq for m in await stored(storage, chat.id)] == list(range(1, 19))
    finally:
        await storage.close()
    with closing(sqlite3.connect(path)) as file:
        assert file.execute("SELECT count(*) FROM messages").fetchone() == (18,)


def test_running_a_coroutine_without_a_loop_refuses_one_that_waits() -> None:
    """The SQLite writer runs ``Statements.write`` without a loop; were a
    statement ever to wait, that is an error, not a message half written."""

    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        append_sql.without_loop(waits())


async def test_a_write_lock_held_elsewhere_sends_the_batch_to_the_thread(
    sqlite_store: Storage,
) -> None:
    """The loop never waits for the lock: the thread does, and the append
    completes once the other connection lets go."""
    await add_users(sqlite_store, "alice", "bob")
    chat = await new_chat(sqlite_store, "alice", "bob")
    await post(sqlite_store, chat.id, "before")
    calls = record_threads(sqlite_store)
    other = sqlite3.connect(sqlite_store.engine.url.database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        sending = asyncio.ensure_future(post(sqlite_store, chat.id, "while locked"))
        started = time.monotonic()
        await asyncio.sleep(0.3)  # the loop runs on meanwhile
        assert time.monotonic() - started < 1.0
        assert not sending.done()
        other.execute("COMMIT")
        message, created = await asyncio.wait_for(sending, 10)
    finally:
        other.close()
    assert created and message.seq == 2
    loop = threading.current_thread().name
    assert calls == [(loop, 1), ("chatsio-sqlite-writer_0", 1)]


async def test_writing_in_place_checkpoints_the_wal(
    sqlite_store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without checkpoints the WAL would grow by every commit made in place
    (about 8 MB for these 400); with them it is reused from its start, once a
    checkpoint made while nothing writes has copied all of it."""
    monkeypatch.setattr(appends, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(appends, "WAL_FRAMES_MAX", 100)
    writer = sqlite_store.messages.writer.sqlite
    await add_users(sqlite_store, "alice", "bob")
    chat = await new_chat(sqlite_store, "alice", "bob")
    for i in range(400):
        await post(sqlite_store, chat.id, f"m{i}")
        if writer.checkpointing is not None:
            # As on a machine whose checkpoints keep up: how far the WAL
            # grows beside a slow one depends on the disk and the scheduler.
            await asyncio.wait_for(writer.checkpointing, 5)
    wal = await asyncio.to_thread(
        os.path.getsize, sqlite_store.engine.url.database + "-wal"
    )
    assert wal < 2 * 1024 * 1024
    assert len(await stored(sqlite_store, chat.id)) == 400


async def test_a_slow_checkpoint_holds_up_no_append_until_the_wal_is_long(
    sqlite_store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint stuck on a slow disk (simulated: it waits for the test)
    runs beside the appends. Once the WAL has grown past WAL_FRAMES_MAX, the
    next checkpoint is waited for, so that the WAL can start over."""
    monkeypatch.setattr(appends, "CHECKPOINT_EVERY", 3)
    writer = sqlite_store.messages.writer.sqlite
    checkpoint, disk_synced = writer.checkpoint_wal, threading.Event()

    def slow_checkpoint() -> bool:
        disk_synced.wait(10)
        return checkpoint()

    monkeypatch.setattr(writer, "checkpoint_wal", slow_checkpoint)
    await add_users(sqlite_store, "alice", "bob")
    chat = await new_chat(sqlite_store, "alice", "bob")
    for i in range(10):  # a checkpoint starts after the third and holds
        assert (await asyncio.wait_for(post(sqlite_store, chat.id, f"m{i}"), 5))[1]
    assert writer.checkpointing is not None and not writer.checkpointing.done()
    disk_synced.set()
    await asyncio.wait_for(writer.checkpointing, 5)

    disk_synced.clear()
    writer.wal_frames = appends.WAL_FRAMES_MAX  # as a long WAL leaves it
    waiting = asyncio.ensure_future(post(sqlite_store, chat.id, "after"))
    done, _ = await asyncio.wait([waiting], timeout=0.3)
    assert not done  # held until the checkpoint has run
    disk_synced.set()
    assert (await asyncio.wait_for(waiting, 5))[1]
    assert writer.wal_frames == 0  # all copied: the WAL starts over
    assert len(await stored(sqlite_store, chat.id)) == 11


async def test_connections_checkpoint_the_wal_at_the_chosen_size(
    sqlite_store: Storage,
) -> None:
    """Every connection but the loop's (which never checkpoints by itself)
    copies the WAL out at WAL_CHECKPOINT_PAGES, not SQLite's 1,000."""
    await add_users(sqlite_store, "alice", "bob")
    chat = await new_chat(sqlite_store, "alice", "bob")
    await post(sqlite_store, chat.id, "one")
    writer = sqlite_store.messages.writer.sqlite

    def autocheckpoint(connection: sqlite3.Connection) -> int:
        return connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]

    thread = await asyncio.get_running_loop().run_in_executor(
        writer.executor, lambda: autocheckpoint(writer.connection or writer.connect())
    )
    assert thread == database.WAL_CHECKPOINT_PAGES == 4000
    assert autocheckpoint(writer.in_place) == 0
    async with sqlite_store.engine.connect() as conn:
        pages = await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")
        assert pages.scalar() == 4000
