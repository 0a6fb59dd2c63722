"""Files: the /chat ``file`` event and ``GET /api/files/{file_id}``.

PROTOCOL.md, /chat ``file``: members only; ``name`` 1-255 characters, stored as
given but never used as a path; ``data`` a binary attachment of at most the file
limit. Stored, then announced as a ``notify`` Message of kind ``file`` to the room
except the sender, and acked with it; over the limit: ``too_large``, the
connection stays open. REST: the bytes, members of its chat only, as an attachment.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from conftest import TIMEOUT, Harness, Peer, tracebacks
from helpers import (
    assert_message_shape,
    error_code,
    fast_user,
    join,
    say,
    start_chat,
)

from chatsio.protocol import CHAT, CONTROL

UNKNOWN_ID = "0b5d2a4e-8f6b-4c1e-9a57-3d2f1e0c9b8a"


class Room:
    """alice (two devices) and bob in a chat, all joined; carol is outside it."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.tokens: dict[str, str] = {}

    async def setup(self, **alice_connect: Any) -> Room:
        for name in ("alice", "bob", "carol"):
            self.tokens[name] = await fast_user(self.harness, name)
        self.alice = await self.harness.peer(self.tokens["alice"], **alice_connect)
        self.alice2, _ = await self.harness.member(self.tokens["alice"])
        self.bob, _ = await self.harness.member(self.tokens["bob"])
        self.id = (await start_chat(self.alice, "bob"))["id"]
        for device in (self.alice, self.alice2, self.bob):
            await join(device, self.id)
        return self

    async def send(self, peer: Peer, name: str, media_type: str, data: Any) -> dict:
        payload = {"id": self.id, "name": name, "type": media_type, "data": data}
        return await peer.call(CHAT, "file", payload)


@pytest.fixture
async def room(chatsio) -> Room:
    return await Room(chatsio).setup()


async def download(harness: Harness, url: str, token: str | None):
    """GET a file's url; (status, headers, body bytes)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with harness.http.get(urljoin(harness.url + "/", url), headers=headers) as r:
        return r.status, r.headers, await r.read()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_file_message(
    message: dict, chat_id: str, sender: str, name: str, media_type: str, data: bytes
) -> None:
    assert_message_shape(message)
    assert message["id"] == chat_id and message["kind"] == "file"
    assert message["text"] == name and message["sender"] == sender
    assert message["client_id"] is None
    file = message["file"]
    assert set(file) == {"file_id", "name", "type", "size", "url"}, file
    assert file["name"] == name and file["type"] == media_type
    assert file["size"] == len(data)
    assert isinstance(file["url"], str) and file["file_id"] in file["url"]


def assert_attachment(headers, media_type: str, name: str) -> None:
    assert headers.getall("Content-Type") == [media_type], headers
    assert headers.get("X-Content-Type-Options") == "nosniff", headers
    values = headers.getall("Content-Disposition")
    assert len(values) == 1, values  # one header, however odd the name
    value = values[0]
    assert "\r" not in value and "\n" not in value, value
    disposition, params = parse_content_disposition(value)
    assert disposition == "attachment", value
    assert "filename*" in params, value  # the exact name, RFC 6266 / 5987
    assert content_disposition_filename(params, "filename") == name, value
    assert set(params) <= {"filename", "filename*"}, params


def assert_error_reply(status: int, body: bytes, expected: int, code: str) -> None:
    assert status == expected, (status, body)
    error = json.loads(body)
    assert set(error) == {"error"} and set(error["error"]) == {
        "code",
        "message",
        "fields",
    }, error
    assert error["error"]["code"] == code, error


# --- delivery and download ------------------------------------------------------


async def test_a_file_reaches_the_room_and_downloads_intact(chatsio, room, server_log):
    data = os.urandom(300_000)
    ack = await room.send(room.alice, "photo.jpg", "image/jpeg", data)
    assert ack["ok"], ack
    message = ack["message"]
    assert_file_message(message, room.id, "alice", "photo.jpg", "image/jpeg", data)
    assert message["seq"] == 1
    # Everyone else in the room hears it, the sender's other device included.
    assert await room.bob.next(CHAT, "notify") == message
    assert await room.alice2.next(CHAT, "notify") == message
    # Barrier: the first notify the sending socket gets is bob's later message.
    reply = await say(room.bob, room.id, "nice photo")
    assert await room.alice.next(CHAT, "notify") == reply

    for token in (room.tokens["bob"], room.tokens["alice"]):
        status, headers, body = await download(chatsio, message["file"]["url"], token)
        assert status == 200, body[:200]
        assert sha256(body) == sha256(data) and len(body) == len(data)
        assert_attachment(headers, "image/jpeg", "photo.jpg")

    # It is part of the history, like any message.
    ack = await room.bob.call(CHAT, "history", {"id": room.id})
    assert ack["ok"] and ack["messages"] == [message, reply]
    late = await chatsio.peer(room.tokens["bob"], namespaces=(CHAT,))
    assert (await join(late, room.id))["messages"] == [message, reply]
    assert tracebacks(server_log) == []


async def test_a_file_stays_downloadable_after_the_chat_ends(chatsio, room):
    data = os.urandom(1000)
    ack = await room.send(room.alice, "notes.txt", "text/plain", data)
    assert ack["ok"], ack
    assert (await room.bob.call(CONTROL, "terminate", {"id": room.id}))["ok"]
    url = ack["message"]["file"]["url"]
    status, _, body = await download(chatsio, url, room.tokens["bob"])
    assert status == 200 and body == data


async def test_download_is_for_members_of_the_files_chat(chatsio, room):
    data = os.urandom(2000)
    ack = await room.send(room.alice, "secret.bin", "application/octet-stream", data)
    assert ack["ok"], ack
    url, file_id = ack["message"]["file"]["url"], ack["message"]["file"]["file_id"]

    status, _, body = await download(chatsio, url, room.tokens["carol"])
    assert_error_reply(status, body, 403, "forbidden")
    status, _, body = await download(chatsio, url, None)
    assert_error_reply(status, body, 401, "unauthorized")
    status, _, body = await download(chatsio, url, "not-a-token")
    assert_error_reply(status, body, 401, "unauthorized")
    unknown = url.replace(file_id, UNKNOWN_ID)
    status, _, body = await download(chatsio, unknown, room.tokens["alice"])
    assert_error_reply(status, body, 404, "not_found")
    status, _, body = await download(chatsio, "/api/files/nope", room.tokens["alice"])
    assert status in (400, 404), body
    assert_error_reply(status, body, status, {400: "invalid", 404: "not_found"}[status])


# --- the limit --------------------------------------------------------------------


async def test_a_file_over_the_limit_is_too_large_and_not_stored(
    make_config, server_log
):
    harness = await Harness(
        make_config(max_file_bytes=100_000, rate_limit=1000, rate_burst=1000)
    ).start()
    try:
        room = await Room(harness).setup()
        ack = await room.send(
            room.alice, "big.bin", "application/octet-stream", os.urandom(100_001)
        )
        assert error_code(ack) == "too_large", ack
        assert room.alice.client.connected

        # The connection works, and the refused file took no seq and was not sent.
        after = await say(room.alice, room.id, "still here")
        assert after["seq"] == 1
        assert await room.bob.next(CHAT, "notify") == after
        ack = await room.bob.call(CHAT, "history", {"id": room.id})
        assert ack["ok"] and ack["messages"] == [after]

        # Exactly at the limit is fine.
        data = os.urandom(100_000)
        ack = await room.send(room.alice, "edge.bin", "application/octet-stream", data)
        assert ack["ok"], ack
        assert ack["message"]["seq"] == 2 and ack["message"]["file"]["size"] == 100_000
        assert await room.bob.next(CHAT, "notify") == ack["message"]
        status, _, body = await download(
            harness, ack["message"]["file"]["url"], room.tokens["bob"]
        )
        assert status == 200 and body == data
        assert tracebacks(server_log) == []
    finally:
        await harness.close()


# --- names are labels -------------------------------------------------------------

NAMES = [
    pytest.param("../../etc/passwd", "passwd", id="traversal"),
    pytest.param('a"b\r\nX-Evil: 1.txt', "Evil", id="header-injection"),
    pytest.param("ünïcødé ☃.txt", "☃", id="unicode"),
    pytest.param(";filename=evil.exe", "evil", id="parameter-injection"),
    pytest.param("C:\\Windows\\evil.dll", "evil", id="windows-path"),
    pytest.param("/tmp/chatsio-absolute-evil", "absolute-evil", id="absolute"),
]
SKIPPED_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache"}


def listing(root: Path, *, recursive: bool) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        for entry in dirnames + filenames:
            path = os.path.join(dirpath, entry)
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                continue
            found[path] = (stat.st_size, stat.st_mtime_ns)
        if not recursive:
            break
    return found


def snapshot(tmp_path: Path, name: str) -> dict[str, Any]:
    cwd = Path.cwd()
    targets = [
        Path(root, name) for root in (cwd, tmp_path, Path(tempfile.gettempdir()))
    ]
    targets.append(Path(name))
    return {
        "tmp": listing(tmp_path, recursive=True),
        "cwd": listing(cwd, recursive=True),
        "temp": listing(Path(tempfile.gettempdir()), recursive=False),
        "targets": {
            str(path): (path.stat().st_mtime_ns if path.exists() else None)
            for path in targets
        },
    }


@pytest.mark.parametrize("name,token", NAMES)
async def test_a_name_is_a_label_never_a_path(chatsio, room, tmp_path, name, token):
    before = snapshot(tmp_path, name)
    data = os.urandom(5000)
    ack = await room.send(room.alice, name, "application/octet-stream", data)
    assert ack["ok"], ack
    message = ack["message"]
    assert_file_message(
        message, room.id, "alice", name, "application/octet-stream", data
    )
    assert await room.bob.next(CHAT, "notify") == message

    status, headers, body = await download(
        chatsio, message["file"]["url"], room.tokens["bob"]
    )
    assert status == 200 and body == data
    assert "X-Evil" not in headers
    assert_attachment(headers, "application/octet-stream", name)

    after = snapshot(tmp_path, name)
    assert after["targets"] == before["targets"]  # nothing made, nothing touched
    # The test's own directory gains only the database's files.
    new_here = set(after["tmp"]) - set(before["tmp"])
    assert all(Path(p).name.startswith("chatsio.db") for p in new_here), new_here
    for where in ("cwd", "temp"):  # shared with others: look for the name only
        new = set(after[where]) - set(before[where])
        assert not [p for p in new if token in p], new


# --- bad payloads -----------------------------------------------------------------


async def test_bad_file_payloads(chatsio, room, server_log):
    data = os.urandom(100)
    cases = [
        ({"name": "a.txt", "type": "text/plain", "data": "not bytes"}, "data"),
        ({"name": "a.txt", "type": "text/plain"}, "data"),
        ({"name": "", "type": "text/plain", "data": data}, "name"),
        ({"name": "n" * 256, "type": "text/plain", "data": data}, "name"),
        ({"name": 5, "type": "text/plain", "data": data}, "name"),
        ({"type": "text/plain", "data": data}, "name"),
        ({"name": "a.txt", "type": "not a type", "data": data}, "type"),
        ({"name": "a.txt", "type": "text/plain\r\nX-Evil: 1", "data": data}, "type"),
        ({"name": "a.txt", "data": data}, "type"),
        ({"name": "a.txt", "type": "text/plain", "data": data, "x": 1}, "x"),
    ]
    for payload, field in cases:
        ack = await room.alice.call(CHAT, "file", {"id": room.id, **payload})
        assert error_code(ack) == "invalid", (payload.get("name"), field, ack)
        assert field in ack["error"]["fields"], (field, ack)
    for payload in ("a string", [room.id], None, data):
        ack = await room.alice.call(CHAT, "file", payload)
        assert error_code(ack) == "invalid", (payload, ack)

    # Nothing was stored or sent: the next message is seq 1, and bob's first.
    said = await say(room.alice, room.id, "still fine")
    assert said["seq"] == 1
    assert await room.bob.next(CHAT, "notify") == said

    longest = "n" * 255
    ack = await room.send(room.alice, longest, "text/plain", data)
    assert ack["ok"] and ack["message"]["file"]["name"] == longest, ack
    assert tracebacks(server_log) == []


async def test_a_file_to_a_chat_one_cannot_post_in(chatsio, room):
    carol = await chatsio.peer(room.tokens["carol"], namespaces=(CHAT,))
    ack = await room.send(carol, "x.txt", "text/plain", b"hi")
    assert error_code(ack) == "forbidden"

    payload = {"id": UNKNOWN_ID, "name": "x.txt", "type": "text/plain", "data": b"hi"}
    assert error_code(await room.alice.call(CHAT, "file", payload)) == "not_found"

    said = await say(room.bob, room.id, "barrier")  # nothing stored before it
    assert said["seq"] == 1
    assert await room.alice.next(CHAT, "notify") == said

    assert (await room.bob.call(CONTROL, "terminate", {"id": room.id}))["ok"]
    ack = await room.send(room.alice, "late.txt", "text/plain", b"hi")
    assert error_code(ack) == "terminated"
    ack = await room.bob.call(CHAT, "history", {"id": room.id})
    assert [m["kind"] for m in ack["messages"]] == ["message", "notification"]


# --- long-polling -------------------------------------------------------------------


async def close_polling(harness: Harness, *peers: Peer) -> None:
    """Disconnect polling-only clients at once.

    python-engineio's client otherwise waits out the pending long-poll GET,
    which the server holds for the 25 s ping interval.
    """
    for peer in peers:
        harness.peers.remove(peer)
        reader = peer.client.eio.read_loop_task
        await peer.client.eio.disconnect(abort=True)
        if reader is not None:
            await asyncio.wait_for(reader, TIMEOUT)


@pytest.mark.parametrize("size", [20_000, 200_000], ids=["20KB", "200KB"])
async def test_a_file_over_long_polling(chatsio, size):
    room = await Room(chatsio).setup(transports=["polling"])
    listener = await chatsio.peer(room.tokens["bob"], transports=["polling"])
    try:
        await join(listener, room.id)
        data = os.urandom(size)
        ack = await room.send(room.alice, "scan.pdf", "application/pdf", data)
        assert ack["ok"], ack
        message = ack["message"]
        assert_file_message(
            message, room.id, "alice", "scan.pdf", "application/pdf", data
        )
        assert await listener.next(CHAT, "notify") == message
        assert await room.bob.next(CHAT, "notify") == message
        url = message["file"]["url"]
        status, headers, body = await download(chatsio, url, room.tokens["bob"])
        assert status == 200 and sha256(body) == sha256(data)
        assert_attachment(headers, "application/pdf", "scan.pdf")
        # The sending connection still works.
        assert (await say(room.alice, room.id, "sent"))["seq"] == message["seq"] + 1
    finally:
        await close_polling(chatsio, room.alice, listener)
