"""A token names an account that existed when it was issued (issue 15, item 5).

After ``chatsio deleteuser NAME`` the user's tokens are refused everywhere, and
a later user of the same name gets tokens of their own: the old ones never
read the newcomer's chats. Run against a real server on SQLite and PostgreSQL,
with the command run as a real process on the server's database.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import jwt
import pytest
import socketio
from conftest import TIMEOUT, Harness, tracebacks
from helpers import fast_user, password_hash, store_messages
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.ext.asyncio import create_async_engine

import chatsio
from chatsio.protocol import CHAT, CONTROL, now_ms

SECRET = "token-owner-tests-" + "k" * 32
SOURCE_ROOT = Path(chatsio.__file__).resolve().parent.parent
RUN_TIMEOUT = 30.0  # start Python, touch the database, exit


def chatsio_command(
    cwd: Path, *args: str, database_url: str
) -> subprocess.CompletedProcess:
    """Run ``chatsio ARGS`` as the operator would, on the server's database."""
    return subprocess.run(
        [sys.executable, "-m", "chatsio", *args, "--database-url", database_url],
        cwd=cwd,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(SOURCE_ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def one_line(stream: str) -> str:
    lines = stream.strip().splitlines()
    assert len(lines) == 1, stream
    return lines[0]


def delete_user(harness: Harness, cwd: Path, name: str) -> None:
    done = chatsio_command(
        cwd, "deleteuser", name, database_url=harness.config.database_url
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert one_line(done.stdout).startswith(f"deleted user {name} from ")
    assert done.stderr == ""


async def rest(
    harness: Harness, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with harness.http.request(
        method, harness.url + path, json=body, headers=headers
    ) as response:
        return response.status, await response.json()


def assert_unauthorized(reply: tuple[int, Any]) -> None:
    status, body = reply
    assert status == 401, reply
    assert body["error"]["code"] == "unauthorized", reply


async def refused_connect(harness: Harness, token: str) -> list[dict]:
    """Connect both namespaces with ``token``; expect refusal; the errors' data."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[dict] = []
    for namespace in (CONTROL, CHAT):
        client.on("connect_error", lambda data: errors.append(data), namespace)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                harness.url,
                namespaces=[CONTROL, CHAT],
                auth={"token": token},
                wait_timeout=TIMEOUT,
            )
    finally:
        await client.disconnect()  # in case it was let in
    return errors


async def assert_token_refused(harness: Harness, token: str) -> None:
    """Refused on REST, reading and writing, and on every namespace."""
    assert_unauthorized(await rest(harness, "GET", "/api/me", token))
    assert_unauthorized(await rest(harness, "GET", "/api/chats", token))
    started = await rest(harness, "POST", "/api/chats", token, {"members": ["carol"]})
    assert_unauthorized(started)
    errors = await refused_connect(harness, token)
    assert [e["data"]["code"] for e in errors] == ["unauthorized"] * 2, errors


@pytest.fixture
async def harness(make_config, any_database_url: str, server_log):
    harness = await Harness(
        make_config(database_url=any_database_url, secret=SECRET)
    ).start()
    yield harness
    await harness.close()
    assert tracebacks(server_log) == []


async def test_a_deleted_users_tokens_are_refused_and_their_chats_stay(
    harness: Harness, tmp_path: Path
) -> None:
    bob = await fast_user(harness, "bob")
    alice = await fast_user(harness, "alice")
    await fast_user(harness, "carol")
    status, chat = await rest(
        harness, "POST", "/api/chats", bob, {"members": ["alice"], "title": "t"}
    )
    assert status == 201, chat
    await store_messages(harness, chat["id"], "bob", 2)
    assert (await rest(harness, "GET", "/api/me", bob))[0] == 200

    delete_user(harness, tmp_path, "bob")

    await assert_token_refused(harness, bob)
    # The chat bob started stays, with his messages; he is no member of it.
    status, kept = await rest(harness, "GET", f"/api/chats/{chat['id']}", alice)
    assert status == 200, kept
    assert kept["members"] == ["alice"] and kept["created_by"] == "bob"
    status, page = await rest(
        harness, "GET", f"/api/chats/{chat['id']}/messages", alice
    )
    assert status == 200, page
    assert [(m["sender"], m["text"]) for m in page] == [("bob", "m1"), ("bob", "m2")]
    posted = await rest(
        harness,
        "POST",
        f"/api/chats/{chat['id']}/messages",
        alice,
        {"text": "still here"},
    )
    assert posted[0] == 201, posted


async def test_a_re_registered_name_gets_new_tokens_and_the_old_ones_read_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    old = await harness.user("bob")  # registered and logged in through REST
    carol = await fast_user(harness, "carol")
    delete_user(harness, tmp_path, "bob")
    new = await harness.user("bob", "another password")
    status, chat = await rest(
        harness, "POST", "/api/chats", carol, {"members": ["bob"]}
    )
    assert status == 201, chat

    await assert_token_refused(harness, old)
    assert_unauthorized(await rest(harness, "GET", f"/api/chats/{chat['id']}", old))
    assert_unauthorized(
        await rest(harness, "GET", f"/api/chats/{chat['id']}/messages", old)
    )
    status, listed = await rest(harness, "GET", "/api/chats", new)
    assert status == 200 and [c["id"] for c in listed] == [chat["id"]], listed
    _, welcome = await harness.member(new)
    assert [c["id"] for c in welcome["chats"]] == [chat["id"]]


async def test_sockets_of_a_deleted_account_are_dropped(
    make_config, any_database_url: str, tmp_path: Path, monkeypatch
) -> None:
    """A socket that connected before ``deleteuser`` goes within the node's
    account check; it never hears what a newcomer of the same name is sent."""
    monkeypatch.setattr("chatsio.app.ACCOUNT_CHECK_EVERY", 0.2)
    harness = await Harness(
        make_config(database_url=any_database_url, secret=SECRET)
    ).start()
    try:
        old = await fast_user(harness, "bob")
        carol = await fast_user(harness, "carol")
        stale, _ = await harness.member(old)
        gone = asyncio.Event()
        stale.client.on("disconnect", gone.set, namespace=CONTROL)
        delete_user(harness, tmp_path, "bob")
        new = await harness.user("bob", "another password")
        await asyncio.wait_for(gone.wait(), TIMEOUT)

        fresh, _ = await harness.member(new)
        status, chat = await rest(
            harness, "POST", "/api/chats", carol, {"members": ["bob"]}
        )
        assert status == 201, chat
        invite = await fresh.next(CONTROL, "invite")
        assert invite["chat"]["id"] == chat["id"]
        assert stale.received(CONTROL, "invite") == []
        await fresh.close()
        await stale.close()
    finally:
        await harness.close()


async def test_a_token_without_the_account_claim_is_refused(
    harness: Harness,
) -> None:
    """Tokens signed before accounts had a key (the upgrade) are refused once."""
    token = await fast_user(harness, "bob")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    del claims["acct"]
    await assert_token_refused(harness, jwt.encode(claims, SECRET, "HS256"))
    claims["acct"] = "not bob's key"
    await assert_token_refused(harness, jwt.encode(claims, SECRET, "HS256"))


async def test_deleteuser_of_an_unknown_name_exits_1_with_one_line(
    harness: Harness, tmp_path: Path
) -> None:
    done = chatsio_command(
        tmp_path, "deleteuser", "nobody", database_url=harness.config.database_url
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "nobody" in one_line(done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""


# The schema an earlier version made: no token_key on users, and chats whose
# creator had to stay a user.
OLD = MetaData()
Table(
    "users",
    OLD,
    Column("username", String(32), primary_key=True),
    Column("password_hash", String(255), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)
Table(
    "chats",
    OLD,
    Column("id", String(36), primary_key=True),
    Column("title", String(100), nullable=True),
    Column("created_by", String(32), ForeignKey("users.username"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("last_seq", Integer, nullable=False, default=0),
)
Table(
    "members",
    OLD,
    Column("chat_id", String(36), ForeignKey("chats.id"), primary_key=True),
    Column("username", String(32), ForeignKey("users.username"), primary_key=True),
)


async def make_old_database(url: str, chat_id: str) -> None:
    """alice (password PASSWORD) started a chat with bob, before the upgrade."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(OLD.create_all)
            users, chats, members = (OLD.tables[n] for n in OLD.tables)
            await conn.execute(
                users.insert(),
                [
                    {
                        "username": name,
                        "password_hash": password_hash(),
                        "is_admin": False,
                        "created_at": now_ms(),
                    }
                    for name in ("alice", "bob")
                ],
            )
            await conn.execute(
                chats.insert().values(
                    id=chat_id, title=None, created_by="alice", created_at=now_ms()
                )
            )
            await conn.execute(
                members.insert(),
                [{"chat_id": chat_id, "username": n} for n in ("alice", "bob")],
            )
    finally:
        await engine.dispose()


async def test_an_old_database_gets_account_keys_and_can_delete_creators(
    make_config, any_database_url: str, tmp_path: Path, server_log
) -> None:
    chat_id = str(uuid.uuid4())
    await make_old_database(any_database_url, chat_id)
    harness = await Harness(make_config(database_url=any_database_url)).start()
    try:
        alice = await harness.user("alice")  # logs in with the old hash
        bob = await harness.user("bob")
        assert (await rest(harness, "GET", "/api/me", alice))[0] == 200
        keys = {
            name: jwt.decode(token, options={"verify_signature": False})["acct"]
            for name, token in (("alice", alice), ("bob", bob))
        }
        assert all(keys.values()) and keys["alice"] != keys["bob"], keys

        delete_user(harness, tmp_path, "alice")  # she created a chat

        await assert_token_refused(harness, alice)
        status, chat = await rest(harness, "GET", f"/api/chats/{chat_id}", bob)
        assert status == 200, chat
        assert chat["members"] == ["bob"] and chat["created_by"] == "alice"
    finally:
        await harness.close()
    assert tracebacks(server_log) == []
    if any_database_url.startswith("sqlite"):  # its definition was edited
        path = any_database_url.split(":///", 1)[1]
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_list(chats)").fetchall() == []
