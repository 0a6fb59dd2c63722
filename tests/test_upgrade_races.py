"""A second WebSocket for one Engine.IO session, and a WebSocket frame that is
no Engine.IO packet (transport/websocket.py), written frame by frame.

A session has one transport at a time: a second upgrade is answered 400, as
stock python-engineio answers it, and the first WebSocket stays the only
way out. A frame engineio cannot decode ends the session at once, as it ends
stock's (engineio's handler fails on it and its connection is dropped).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from cluster import wait_until
from conftest import TIMEOUT, Harness
from helpers import closed_by_server, fast_user, open_polling_session

from chatsio.app import sio_key
from chatsio.protocol import CONTROL

WEBSOCKET_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=TIMEOUT)


class Session:
    """An Engine.IO session opened on long-polling, spoken by hand, with
    /control connected (a session no namespace accepts is closed anyway)."""

    def __init__(self, harness: Harness, sid: str) -> None:
        self.harness = harness
        self.sid = sid
        self.polling = f"{harness.url}/socket.io/?EIO=4&transport=polling&sid={sid}"

    @classmethod
    async def open(cls, harness: Harness) -> Session:
        session = cls(harness, await open_polling_session(harness))
        token = await fast_user(harness, "alice")
        connect = f"40{CONTROL},{json.dumps({'token': token})}"
        async with harness.http.post(session.polling, data=connect) as response:
            assert response.status == 200, await response.text()
        status, body = await session.poll()
        assert status == 200 and body.startswith(f"40{CONTROL},"), body
        return session

    async def poll(self) -> tuple[int, str]:
        """A long-polling GET: its status and body."""
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with self.harness.http.get(self.polling, timeout=timeout) as response:
            return response.status, await response.text()

    async def websocket(self) -> aiohttp.ClientWebSocketResponse:
        url = self.harness.url.replace("http", "ws", 1)
        return await self.harness.http.ws_connect(
            f"{url}/socket.io/?EIO=4&transport=websocket&sid={self.sid}",
            timeout=WEBSOCKET_TIMEOUT,
        )

    async def upgrade(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The client's side of the move to ``ws``: probe, end the poll, UPGRADE."""
        await ws.send_str("2probe")
        assert await ws.receive_str(timeout=TIMEOUT) == "3probe"
        assert await self.poll() == (200, "6")  # the NOOP that ends polling
        await ws.send_str("5")


async def arrives(ws: aiohttp.ClientWebSocketResponse, wanted: str) -> None:
    """Read ``ws`` until the text frame ``wanted``, past the upgrade's NOOP,
    /control's welcome and pings."""
    async with asyncio.timeout(TIMEOUT):
        while await ws.receive_str() != wanted:
            pass


async def test_a_second_upgrade_is_refused_and_the_first_kept(chatsio) -> None:
    """A second WebSocket arriving while the first is upgrading used to
    start an upgrade of its own, which ended (the client gone, or the ping
    timeout) by marking the session not upgraded: polling took it back and
    server packets went out as polling responses, not on the WebSocket."""
    eio = chatsio.server.app[sio_key].eio
    session = await Session.open(chatsio)
    first = await session.websocket()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        second = await session.websocket()
        await second.close()  # reached only where the second was taken
    assert refused.value.status == 400
    await session.upgrade(first)
    await wait_until(lambda: eio.sockets[session.sid].upgraded, within=TIMEOUT)
    with pytest.raises(aiohttp.WSServerHandshakeError) as again:
        await session.websocket()
    assert again.value.status == 400
    assert (await session.poll())[0] == 400  # polling is over for the session
    await eio.send(session.sid, "hello")
    await arrives(first, "4hello")
    await first.close()


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("abc", id="type-not-a-digit"),
        pytest.param("", id="empty"),
        pytest.param("bQ", id="bad-base64"),
    ],
)
async def test_an_invalid_packet_closes_the_session(chatsio, frame) -> None:
    eio = chatsio.server.app[sio_key].eio
    session = await Session.open(chatsio)
    ws = await session.websocket()
    await session.upgrade(ws)
    await wait_until(lambda: eio.sockets[session.sid].upgraded, within=TIMEOUT)
    await ws.send_str(frame)
    await closed_by_server(ws)
    assert session.sid not in eio.sockets


async def test_an_invalid_packet_in_place_of_the_probe_closes_the_session(
    chatsio,
) -> None:
    """Stock engineio's handler fails on it and leaves the session upgrading
    for good; here the session ends."""
    eio = chatsio.server.app[sio_key].eio
    session = await Session.open(chatsio)
    ws = await session.websocket()
    await ws.send_str("abc")
    await closed_by_server(ws)
    assert session.sid not in eio.sockets


async def test_a_packet_of_an_unknown_type_is_dropped(chatsio) -> None:
    """A digit engineio has no packet for decodes, and stock keeps the
    session (logging a traceback): it is dropped, and the session lives on."""
    eio = chatsio.server.app[sio_key].eio
    session = await Session.open(chatsio)
    ws = await session.websocket()
    await session.upgrade(ws)
    await wait_until(lambda: eio.sockets[session.sid].upgraded, within=TIMEOUT)
    await ws.send_str("9")
    await eio.send(session.sid, "still here")
    await arrives(ws, "4still here")
    await ws.close()
