"""Small assertions and builders shared by the protocol tests."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import uuid

import aiohttp
from argon2 import PasswordHasher
from conftest import PASSWORD, TIMEOUT

from chatsio.api.keys import services_key
from chatsio.app import storage_key
from chatsio.protocol import CHAT, CONTROL, now_ms

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_chat_shape(chat: dict) -> None:
    assert set(chat) == {
        "id",
        "title",
        "members",
        "created_by",
        "created_at",
        "active",
        "read_seq",
        "unread",
        "reads",
    }
    assert str(uuid.UUID(chat["id"])) == chat["id"]
    assert ISO_MS.match(chat["created_at"]), chat["created_at"]
    assert chat["created_by"] in chat["members"]
    assert list(chat["reads"]) == chat["members"]
    marks = [chat["read_seq"], chat["unread"], *chat["reads"].values()]
    assert all(type(n) is int and n >= 0 for n in marks), chat


def assert_message_shape(message: dict) -> None:
    assert set(message) == {
        "id",
        "seq",
        "kind",
        "text",
        "sender",
        "ts",
        "client_id",
        "file",
    }
    assert isinstance(message["seq"], int) and message["seq"] >= 1
    assert message["kind"] in ("message", "notification", "file")
    assert ISO_MS.match(message["ts"]), message["ts"]


def error_code(ack: dict) -> str:
    assert ack["ok"] is False, ack
    assert set(ack["error"]) == {"code", "message", "fields"}, ack
    return ack["error"]["code"]


async def start_chat(creator, *members: str, title: str | None = None) -> dict:
    ack = await creator.call(
        CONTROL, "start", {"members": list(members), "title": title}
    )
    assert ack["ok"], ack
    return ack["chat"]


async def say(peer, chat_id: str, text: str, **extra) -> dict:
    ack = await peer.call(
        CHAT, "notify", {"id": chat_id, "kind": "message", "text": text, **extra}
    )
    assert ack["ok"], ack
    return ack["message"]


async def join(peer, chat_id: str, **extra) -> dict:
    ack = await peer.call(CHAT, "join", {"id": chat_id, **extra})
    assert ack["ok"], ack
    return ack


@functools.cache
def password_hash() -> str:
    """One real Argon2 hash per run: each one takes a fifth of a second."""
    return PasswordHasher().hash(PASSWORD)


async def fast_user(harness, name: str, *, admin: bool = False) -> str:
    """A stored user and a token the server signed for it, without the hashing.

    Registration and login themselves are tested through REST.
    """
    user = await harness.server.app[storage_key].users.create(
        name, password_hash(), is_admin=admin, now=now_ms()
    )
    return harness.server.app[services_key].identity.issue(user).token


async def store_messages(harness, chat_id: str, sender: str, count: int) -> None:
    """Fill a chat quickly, straight through storage: texts m1, m2, ..."""
    messages = harness.server.app[storage_key].messages
    for n in range(1, count + 1):
        await messages.append(
            chat_id,
            kind="message",
            text=f"m{n}",
            sender=sender,
            client_id=None,
            now=now_ms(),
        )


async def open_polling_session(harness) -> str:
    """A new Engine.IO session on long-polling: its sid."""
    url = harness.url + "/socket.io/?EIO=4&transport=polling"
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with harness.http.get(url, timeout=timeout) as response:
        opening = await response.text()
    assert response.status == 200 and opening[0] == "0", opening
    return json.loads(opening[1:])["sid"]


async def end_polling_session(harness, sid: str) -> None:
    """Close the session as a client does (a CLOSE packet), if it still lives.

    An idle polling session would otherwise hold the server's shutdown for its
    full 3 s notice bound (its close waits for a GET to drain its queue).
    """
    url = f"{harness.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with harness.http.post(url, data=b"1", timeout=timeout) as response:
        await response.read()


class BadRecords(logging.Handler):
    """Collects records that carry a traceback or are ERROR and above."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)

    def since(self, mark: int) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            + (f" ({r.exc_info[0].__name__}: {r.exc_info[1]})" if r.exc_info else "")
            for r in self.records[mark:]
        ]


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read until the server closes ``ws``, answering no ping on the way."""
    async with asyncio.timeout(TIMEOUT):
        while not ws.closed:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return
