"""The two servers every case runs against: chatsio, built by
``create_app(config)``, and a stock python-socketio ``AsyncServer`` set up the
same way (the namespaces /control and /chat only, a token required in the
CONNECT's auth, events answered with an ack, the same Engine.IO settings)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Harness
from helpers import fast_user

from chatsio.app import sio_key
from chatsio.config import Config

from .raw import WebSocket, socketio_packet

CONTROL, CHAT = "/control", "/chat"
# The heartbeat cases shorten both servers' pings to these (seconds).
PING_INTERVAL, PING_TIMEOUT = 0.4, 0.6


def upstream(reason: str) -> pytest.MarkDecorator:
    """A case stock python-socketio fails as well, for the upstream ``reason``."""
    return pytest.mark.xfail(strict=True, reason=f"upstream: {reason}")


@dataclass
class Target:
    """A running server as the cases see it."""

    name: str
    url: str
    http: aiohttp.ClientSession
    sio: socketio.AsyncServer
    token: str
    chat_id: str  # a chat the token's user belongs to (chatsio's file event)

    @property
    def auth(self) -> str:
        return json.dumps({"token": self.token})

    def quick_pings(self) -> None:
        self.sio.eio.ping_interval = PING_INTERVAL
        self.sio.eio.ping_timeout = PING_TIMEOUT

    async def websocket(self, sid: str | None = None) -> WebSocket:
        return await WebSocket.connect(self.http, self.url, sid)

    async def joined(self, namespace: str = CHAT) -> tuple[WebSocket, str]:
        """A WebSocket session with ``namespace`` connected: it and the
        namespace's Socket.IO sid."""
        ws = await self.websocket()
        assert (await ws.next())[:1] == "0"
        await ws.send(f"40{namespace},{self.auth}")
        kind, where, _, data = socketio_packet(await ws.next())
        assert (kind, where) == (0, namespace), data
        return ws, data["sid"]


class StockNamespace(socketio.AsyncNamespace):
    """The control's namespace: refuses a CONNECT without the token, as
    chatsio does, and acks every event with ``{"ok": true}`` (a ``file``
    event only if its data arrived as bytes)."""

    def __init__(self, namespace: str, token: str) -> None:
        super().__init__(namespace)
        self.token = token

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            auth = args[2] if len(args) > 2 else None
            if not isinstance(auth, dict) or auth.get("token") != self.token:
                raise socketio.exceptions.ConnectionRefusedError("unauthorized")
            return None
        if event == "disconnect":
            return None
        payload = args[1] if len(args) > 1 else None
        if event == "file":
            return {"ok": isinstance(payload, dict) and payload.get("data") == FILE}
        return {"ok": True}


FILE = b"\x00\x01\x02\xff conformance"


def stock_server(token: str, like: socketio.AsyncServer) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        namespaces=[CONTROL, CHAT],
        max_http_buffer_size=like.eio.max_http_buffer_size,
        async_handlers=False,
        logger=False,
        engineio_logger=False,
    )
    for namespace in (CONTROL, CHAT):
        sio.register_namespace(StockNamespace(namespace, token))
    return sio


@pytest.fixture
async def chatsio_target(sqlite_url: str) -> AsyncIterator[Target]:
    harness = await Harness(Config(database_url=sqlite_url)).start()
    try:
        alice = await fast_user(harness, "alice")
        await fast_user(harness, "bob")
        status, chat = await harness.post("/api/chats", {"members": ["bob"]}, alice)
        assert status == 201, chat
        sio = harness.server.app[sio_key]
        yield Target("chatsio", harness.url, harness.http, sio, alice, chat["id"])
    finally:
        await harness.close()


@pytest.fixture(params=["chatsio", "stock"])
async def target(
    request: pytest.FixtureRequest, chatsio_target: Target
) -> AsyncIterator[Target]:
    """Each case runs once on chatsio and once on the stock control."""
    if request.param == "chatsio":
        yield chatsio_target
        return
    token = secrets.token_urlsafe(16)
    sio = stock_server(token, like=chatsio_target.sio)
    app = web.Application()
    sio.attach(app)
    server = TestServer(app)
    await server.start_server(shutdown_timeout=1.0)  # not 60 s for open sockets
    try:
        url = str(server.make_url("")).rstrip("/")
        yield Target("stock", url, chatsio_target.http, sio, token, "any")
    finally:
        await sio.shutdown()
        await server.close()
