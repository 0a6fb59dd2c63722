"""Per-account budgets (issue 15): what one account may hold and store.

- Binary packets: a ``file`` carries one attachment, so a packet announcing
  more is refused at its header; a user's packets in flight on a node are held
  to ``CHATSIO_ATTACHMENT_BYTES_PER_USER``; a packet whose attachment does not
  arrive within ``CHATSIO_ATTACHMENT_TIMEOUT`` is dropped and answered.
- Messages: REST posts and sockets draw from one allowance per user and node.
- Files: what a user has stored is held to ``CHATSIO_FILE_QUOTA_BYTES``.

Hostile packet shapes are written by hand on a plain WebSocket, as a script
would send them; the rest uses real clients.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from cluster import wait_until
from conftest import TIMEOUT, Harness
from helpers import fast_user, join, say, start_chat

from chatsio.app import sio_key
from chatsio.protocol import CHAT

PLACEHOLDER = {"_placeholder": True, "num": 0}
# 200 characters, 2,400 bytes of JSON escapes: a header of about 2.5 KB.
WIDE_NAME = "\N{GRINNING FACE}" * 200


class RawSocket:
    """One Engine.IO session on a WebSocket, its frames written by hand."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, eio_sid: str) -> None:
        self.ws = ws
        self.eio_sid = eio_sid
        self.ack_ids = iter(range(1, 10**6))

    @classmethod
    async def open(cls, harness: Harness, token: str) -> RawSocket:
        url = harness.url.replace("http", "ws", 1) + "/socket.io/?EIO=4"
        ws = await harness.http.ws_connect(url + "&transport=websocket")
        opened = await asyncio.wait_for(ws.receive_str(), TIMEOUT)
        socket = cls(ws, json.loads(opened[1:])["sid"])
        await ws.send_str(f"40{CHAT},{json.dumps({'token': token})}")
        await socket.until(lambda frame: frame.startswith(f"40{CHAT},"))
        return socket

    async def until(self, wanted) -> str:
        """The first text frame ``wanted`` accepts, answering pings meanwhile."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                message = await self.ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"the server closed: {message!r}")
                if message.data == "2":
                    await self.ws.send_str("3")
                elif wanted(message.data):
                    return message.data

    async def announce(self, args: list, count: int = 1) -> int:
        """Send a binary event's header announcing ``count`` attachments."""
        ack = next(self.ack_ids)
        await self.ws.send_str(f"45{count}-{CHAT},{ack}{json.dumps(args)}")
        return ack

    async def ack(self, ack: int) -> Any:
        prefix = f"43{CHAT},{ack}["
        frame = await self.until(lambda f: f.startswith(prefix))
        return json.loads(frame[len(prefix) - 1 :])[0]

    async def call(self, event: str, payload: Any) -> Any:
        ack = next(self.ack_ids)
        await self.ws.send_str(f"42{CHAT},{ack}{json.dumps([event, payload])}")
        return await self.ack(ack)


def file_args(chat_id: str, name: str = "a.bin") -> list:
    return [
        "file",
        {
            "id": chat_id,
            "name": name,
            "type": "application/octet-stream",
            "data": PLACEHOLDER,
        },
    ]


async def started(config) -> Harness:
    return await Harness(config).start()


@pytest.fixture
async def roomy(make_config) -> AsyncIterator[Harness]:
    """Small attachment budgets: 4 KB in flight per user, a 1 s timeout."""
    harness = await started(
        make_config(
            rate_limit=1000,
            rate_burst=1000,
            attachment_bytes_per_user=4000,
            attachment_timeout=1.0,
            max_file_bytes=100_000,
        )
    )
    yield harness
    await harness.close()


async def alice_chat(harness: Harness) -> tuple[str, str]:
    """alice's token and a chat of hers with bob."""
    token = await fast_user(harness, "alice")
    await fast_user(harness, "bob")
    alice = await harness.peer(token)
    chat = await start_chat(alice, "bob")
    return token, chat["id"]


def pending(harness: Harness, *sockets: RawSocket) -> list[str]:
    """The sockets python-socketio holds a partial binary packet for."""
    partial = harness.server.app[sio_key]._binary_packet  # python-socketio's own
    return [socket.eio_sid for socket in sockets if socket.eio_sid in partial]


# Half-sent attachments ------------------------------------------------------


async def test_half_sent_attachments_are_refused_at_the_header(roomy):
    """The High finding: 6 sockets of one account each announced a
    10-attachment ``file`` and sent 9 pieces, never the 10th: all held."""
    token, chat_id = await alice_chat(roomy)
    sockets = [await RawSocket.open(roomy, token) for _ in range(6)]
    acks = [await socket.announce(file_args(chat_id), count=10) for socket in sockets]
    for socket in sockets:
        for _ in range(9):
            await socket.ws.send_bytes(os.urandom(50_000))
    for socket, ack in zip(sockets, acks, strict=True):
        reply = await socket.ack(ack)
        assert reply["error"]["code"] == "invalid", reply
        # Answered in order: every piece sent before this call was handled.
        assert (await socket.call("history", {"id": chat_id}))["ok"]
    assert pending(roomy, *sockets) == []
    assert roomy.server.app[sio_key].chatsio_attachments.held == {}


async def test_an_oversized_header_is_refused_before_it_is_held(roomy):
    """A ``file`` header needs under 4 KB; a larger one would be held, decoded,
    while its attachment is awaited."""
    token, chat_id = await alice_chat(roomy)
    socket = await RawSocket.open(roomy, token)
    ack = await socket.announce(file_args(chat_id, "x" * 9000))
    reply = await socket.ack(ack)
    assert reply["error"]["code"] == "too_large", reply
    assert pending(roomy, socket) == []


async def test_a_users_packets_in_flight_are_bounded_across_sockets(roomy):
    token, chat_id = await alice_chat(roomy)
    first, second = [await RawSocket.open(roomy, token) for _ in range(2)]
    held = await first.announce(file_args(chat_id, WIDE_NAME))  # no piece yet
    await wait_until(lambda: pending(roomy, first), within=TIMEOUT)
    over = await second.announce(file_args(chat_id, WIDE_NAME))
    refused = await second.ack(over)
    assert refused["error"]["code"] == "rate_limited", refused
    assert pending(roomy, second) == []
    # The first one's file completes, and then the second may go.
    await first.ws.send_bytes(b"first")
    assert (await first.ack(held))["ok"], "the held packet was not completed"
    again = await second.announce(file_args(chat_id, WIDE_NAME))
    await second.ws.send_bytes(b"second")
    assert (await second.ack(again))["ok"]
    assert roomy.server.app[sio_key].chatsio_attachments.held == {}


async def test_a_files_bytes_count_against_the_users_budget(roomy):
    token, chat_id = await alice_chat(roomy)
    first, second = [await RawSocket.open(roomy, token) for _ in range(2)]
    await first.announce(file_args(chat_id, WIDE_NAME))  # 2.5 KB held
    await wait_until(lambda: pending(roomy, first), within=TIMEOUT)
    ack = await second.announce(file_args(chat_id))  # a small header fits
    await second.ws.send_bytes(os.urandom(3000))  # its file does not
    refused = await second.ack(ack)
    assert refused["error"]["code"] == "rate_limited", refused
    budget = roomy.server.app[sio_key].chatsio_attachments
    assert list(budget.held) == [first.eio_sid]


async def test_one_file_always_fits_whatever_the_budget(roomy):
    """A user with nothing in flight may send a file over the per-user budget."""
    token, chat_id = await alice_chat(roomy)
    alice = await roomy.peer(token, namespaces=(CHAT,))
    payload = {"id": chat_id, "name": "big", "type": "application/octet-stream"}
    ack = await alice.call(CHAT, "file", {**payload, "data": os.urandom(50_000)})
    assert ack["ok"], ack


async def test_an_unfinished_binary_packet_times_out(roomy):
    token, chat_id = await alice_chat(roomy)
    socket = await RawSocket.open(roomy, token)
    ack = await socket.announce(file_args(chat_id))  # and never its attachment
    reply = await socket.ack(ack)  # within TIMEOUT: the 1 s timeout answered
    assert reply["error"]["code"] == "invalid", reply
    assert "did not arrive" in reply["error"]["message"], reply
    assert pending(roomy, socket) == []
    assert roomy.server.app[sio_key].chatsio_attachments.held == {}
    await socket.ws.send_bytes(b"too late")  # dropped: nothing announced it
    assert (await socket.call("history", {"id": chat_id}))["ok"]


async def test_a_packet_pending_at_disconnect_frees_its_budget(roomy):
    token, chat_id = await alice_chat(roomy)
    socket = await RawSocket.open(roomy, token)
    await socket.announce(file_args(chat_id))
    await wait_until(lambda: pending(roomy, socket), within=TIMEOUT)
    await socket.ws.close()
    budget = roomy.server.app[sio_key].chatsio_attachments
    await wait_until(lambda: not budget.held, within=TIMEOUT)


# Messages through REST ------------------------------------------------------


async def test_rest_posts_share_the_users_message_allowance(make_config):
    """The Medium finding: one token stored 1,100-2,200 messages/s by REST."""
    harness = await started(make_config(rate_limit=0.5, rate_burst=5))
    try:
        token, chat_id = await alice_chat(harness)
        path = f"/api/chats/{chat_id}/messages"
        url, headers = harness.url + path, {"Authorization": f"Bearer {token}"}
        statuses = []
        for n in range(8):
            async with harness.http.post(
                url, json={"text": f"m{n}"}, headers=headers
            ) as response:
                statuses.append(response.status)
                if response.status == 429:
                    body, retry_after = await response.json(), response.headers
        assert statuses[:5] == [201] * 5 and statuses[5:] == [429] * 3, statuses
        assert body["error"]["code"] == "rate_limited", body
        assert int(retry_after["Retry-After"]) >= 1
        # The same allowance: a socket of the same user is refused too.
        alice = await harness.peer(token, namespaces=(CHAT,))
        await join(alice, chat_id)
        refused = await alice.call(CHAT, "notify", {"id": chat_id, "text": "more"})
        assert refused["error"]["code"] == "rate_limited", refused
    finally:
        await harness.close()


async def test_sockets_spend_the_allowance_rest_draws_from(make_config):
    harness = await started(make_config(rate_limit=0.5, rate_burst=4))
    try:
        token, chat_id = await alice_chat(harness)
        devices = [await harness.peer(token, namespaces=(CHAT,)) for _ in range(2)]
        for device in devices:
            await join(device, chat_id)
        for device in devices:  # two sockets, two messages each: the burst
            for n in range(2):
                await say(device, chat_id, f"m{n}")
        status, body = await harness.post(
            f"/api/chats/{chat_id}/messages", {"text": "one more"}, token
        )
        assert status == 429 and body["error"]["code"] == "rate_limited", body
    finally:
        await harness.close()


# File storage quota ---------------------------------------------------------


async def quota_room(make_config, database_url: str) -> tuple[Harness, Any, str]:
    harness = await started(
        make_config(
            database_url=database_url,
            rate_limit=1000,
            rate_burst=1000,
            max_file_bytes=100_000,
            file_quota_bytes=250_000,
        )
    )
    token, chat_id = await alice_chat(harness)
    return harness, token, chat_id


def upload(chat_id: str, size: int) -> dict:
    data = os.urandom(size)
    return {
        "id": chat_id,
        "name": "f",
        "type": "application/octet-stream",
        "data": data,
    }


async def test_a_users_stored_files_are_held_to_the_quota(
    make_config, any_database_url
):
    harness, token, chat_id = await quota_room(make_config, any_database_url)
    try:
        alice = await harness.peer(token, namespaces=(CHAT,))
        other_chat = (await start_chat(await harness.peer(token), "bob"))["id"]
        assert (await alice.call(CHAT, "file", upload(chat_id, 100_000)))["ok"]
        assert (await alice.call(CHAT, "file", upload(other_chat, 100_000)))["ok"]
        over = await alice.call(CHAT, "file", upload(chat_id, 60_000))
        assert over["error"]["code"] == "too_large", over
        assert "250000" in over["error"]["message"], over
        # Up to the quota exactly is fine, and other users have their own.
        assert (await alice.call(CHAT, "file", upload(chat_id, 50_000)))["ok"]
        bob = await harness.peer(await fast_user(harness, "bob2"), namespaces=(CHAT,))
        bobs_chat = (await start_chat(await harness.peer(token), "bob2"))["id"]
        assert (await bob.call(CHAT, "file", upload(bobs_chat, 100_000)))["ok"]
    finally:
        await harness.close()


async def test_parallel_uploads_do_not_overshoot_the_quota(
    make_config, any_database_url
):
    """Five sockets upload at once: no more than the quota is stored (one node)."""
    harness, token, chat_id = await quota_room(make_config, any_database_url)
    try:
        devices = [await harness.peer(token, namespaces=(CHAT,)) for _ in range(5)]
        acks = await asyncio.gather(
            *(device.call(CHAT, "file", upload(chat_id, 100_000)) for device in devices)
        )
        codes = sorted("ok" if ack["ok"] else ack["error"]["code"] for ack in acks)
        assert codes == ["ok", "ok", "too_large", "too_large", "too_large"], acks
    finally:
        await harness.close()
