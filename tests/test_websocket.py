"""chatsio's own WebSocket session loop (transport/websocket.py), which replaces
engineio's: the move from polling, a move that fails or stalls, and a client
that falls silent."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from cluster import wait_until
from conftest import TIMEOUT
from helpers import (
    closed_by_server,
    end_polling_session,
    fast_user,
    open_polling_session,
)

from chatsio.app import sio_key
from chatsio.protocol import CHAT, CONTROL


class Polling:
    """An Engine.IO session on long-polling, spoken by hand."""

    def __init__(self, harness, sid: str) -> None:
        self.harness = harness
        self.http = harness.http
        self.endpoint = harness.url + "/socket.io/?EIO=4&transport=polling"
        self.sid = sid

    @classmethod
    async def open(cls, harness) -> Polling:
        return cls(harness, await open_polling_session(harness))

    async def close(self) -> None:
        await end_polling_session(self.harness, self.sid)

    async def get(self) -> str:
        url = f"{self.endpoint}&sid={self.sid}"
        async with self.http.get(url, timeout=aiohttp.ClientTimeout(TIMEOUT)) as r:
            assert r.status == 200, await r.text()
            return await r.text()

    async def post(self, body: str) -> None:
        url = f"{self.endpoint}&sid={self.sid}"
        async with self.http.post(url, data=body) as r:
            assert r.status == 200, await r.text()

    async def websocket(self) -> aiohttp.ClientWebSocketResponse:
        url = self.harness.url.replace("http", "ws", 1)
        return await self.http.ws_connect(
            f"{url}/socket.io/?EIO=4&transport=websocket&sid={self.sid}",
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=TIMEOUT),
        )

    async def connects(self, token: str) -> bool:
        """Whether a namespace connect still works on polling."""
        await self.post(f"40{CONTROL},{json.dumps({'token': token})}")
        return (await self.get()).startswith(f"40{CONTROL},")


async def test_a_polling_client_moves_to_the_websocket(chatsio) -> None:
    """socket.io clients start on polling and upgrade: the handshake is
    chatsio's now, and the session carries on over the WebSocket."""
    alice, bob = await fast_user(chatsio, "alice"), await fast_user(chatsio, "bob")
    status, chat = await chatsio.post("/api/chats", {"members": ["bob"]}, alice)
    assert status == 201, chat
    sender, receiver = await chatsio.peer(alice), await chatsio.peer(bob)
    sockets = chatsio.server.app[sio_key].eio.sockets
    await wait_until(
        lambda: len(sockets) == 2 and all(s.upgraded for s in sockets.values()),
        within=TIMEOUT,
    )
    assert {sender.client.transport(), receiver.client.transport()} == {"websocket"}
    for peer in (sender, receiver):
        joined = await peer.client.call("join", {"id": chat["id"]}, namespace=CHAT)
        assert joined["ok"], joined
    sent = await sender.client.call(
        "notify", {"id": chat["id"], "text": "over the WebSocket"}, namespace=CHAT
    )
    assert sent["ok"], sent
    received = await receiver.next(CHAT, "notify")
    assert received["text"] == "over the WebSocket"


async def test_a_failed_upgrade_leaves_the_session_polling(chatsio) -> None:
    token = await fast_user(chatsio, "alice")
    polling = await Polling.open(chatsio)
    ws = await polling.websocket()
    await ws.send_str("2not a probe")
    await closed_by_server(ws)
    session = chatsio.server.app[sio_key].eio.sockets[polling.sid]
    assert not session.upgraded and not session.upgrading
    assert await polling.connects(token)
    await polling.close()


async def test_a_stalled_upgrade_gives_up_after_the_ping_timeout(chatsio) -> None:
    """engineio waited for the probe without a limit, holding the session's
    sends (``upgrading``) as long as the client kept the WebSocket open."""
    chatsio.server.app[sio_key].eio.ping_timeout = 0.3
    token = await fast_user(chatsio, "alice")
    polling = await Polling.open(chatsio)
    ws = await polling.websocket()
    await closed_by_server(ws)  # having sent nothing
    session = chatsio.server.app[sio_key].eio.sockets[polling.sid]
    assert not session.upgraded and not session.upgrading
    assert await polling.connects(token)
    await polling.close()


async def test_a_client_that_stops_answering_is_dropped(chatsio) -> None:
    """Without a timeout on each read, a silent client still goes: it misses
    a ping, its session closes, and the WebSocket with it."""
    eio = chatsio.server.app[sio_key].eio
    eio.ping_interval, eio.ping_timeout = 0.2, 0.3
    token = await fast_user(chatsio, "alice")
    url = chatsio.url.replace("http", "ws", 1)
    ws = await chatsio.http.ws_connect(
        f"{url}/socket.io/?EIO=4&transport=websocket",
        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=TIMEOUT),
    )
    opening = await ws.receive_str(timeout=TIMEOUT)
    await ws.send_str(f"40{CONTROL},{json.dumps({'token': token})}")
    await closed_by_server(ws)  # the pings go unanswered
    sid = json.loads(opening[1:])["sid"]
    await wait_until(lambda: sid not in eio.sockets, within=TIMEOUT)


async def test_a_cancelled_session_leaves_no_writer_behind(chatsio) -> None:
    """A stopping server cancels the handlers still running after its grace
    period; a session's writer task goes with its handler instead of waiting
    on its queue for ever."""
    await chatsio.peer(await fast_user(chatsio, "alice"), transports=["websocket"])
    (handler,) = [task for task in asyncio.all_tasks() if reads_frames(task)]
    assert writers(), "a connected WebSocket has a writer task"
    handler.cancel()
    await wait_until(lambda: not writers(), within=TIMEOUT)


def reads_frames(task: asyncio.Task) -> bool:
    """Whether ``task`` is a connection's handler, reading its frames."""
    awaiting = task.get_coro()
    while awaiting is not None:
        name = getattr(awaiting, "__qualname__", "")
        if name == "BoundedWebSocket._chatsio_read_packets":
            return True
        awaiting = getattr(awaiting, "cr_await", None)
    return False


def writers() -> list[asyncio.Task]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__ == "BoundedWebSocket._chatsio_write_queued"
        and not task.done()
    ]
