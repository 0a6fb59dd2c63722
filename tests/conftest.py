"""Shared fixtures: a real chatsio server on an ephemeral port, real clients."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestServer

from chatsio.app import create_app
from chatsio.config import Config, database_url
from chatsio.protocol import CHAT, CONTROL

POSTGRES_ADMIN_URL = os.environ.get(
    "CHATSIO_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT = 5.0
PASSWORD = "correct horse"


def unavailable(what: str, reason: str) -> None:
    """Skip a test whose service is down, except in CI, where that is a failure."""
    message = f"{what} is not reachable ({reason})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    name = f"chatsio_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL}", str(exc))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        yield database_url(f"{base}/{name}")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return database_url(f"sqlite:///{tmp_path / 'chatsio.db'}")


@pytest.fixture(params=["sqlite", "postgres"])
def any_database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


class Peer:
    """One device: a real ``socketio.AsyncClient`` recording what it is sent."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.client = client
        self.events: dict[tuple[str, str], asyncio.Queue] = defaultdict(asyncio.Queue)

    async def record(self, event: str, namespace: str, *args: Any) -> None:
        self.events[(namespace, event)].put_nowait(args[0] if len(args) == 1 else args)

    async def call(self, namespace: str, event: str, *payload: Any) -> Any:
        data = payload[0] if len(payload) == 1 else (payload or None)
        return await self.client.call(event, data, namespace=namespace, timeout=TIMEOUT)

    async def emit(self, namespace: str, event: str, payload: Any) -> None:
        await self.client.emit(event, payload, namespace=namespace)

    async def next(self, namespace: str, event: str) -> Any:
        """The next ``event`` received on ``namespace``, waiting at most TIMEOUT."""
        return await asyncio.wait_for(self.events[(namespace, event)].get(), TIMEOUT)

    def received(self, namespace: str, event: str) -> list[Any]:
        """Everything of that kind received so far, without waiting."""
        queue = self.events[(namespace, event)]
        return [queue.get_nowait() for _ in range(queue.qsize())]

    @property
    def sid(self) -> dict[str, str]:
        return {ns: self.client.get_sid(ns) for ns in (CONTROL, CHAT)}

    async def close(self) -> None:
        await self.client.disconnect()


class Harness:
    """A running chatsio server plus helpers to make users and devices."""

    def __init__(self, config: Config, port: int | None = None) -> None:
        self.config = config
        self.port = port  # None: an ephemeral port
        self.server: TestServer | None = None
        self.peers: list[Peer] = []
        self.http = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def start(self) -> Harness:
        self.server = TestServer(create_app(self.config), port=self.port)
        try:
            await self.server.start_server()
        except BaseException:
            await self.http.close()
            raise
        return self

    async def stop(self) -> None:
        """Stop the server process's app (clients stay to be closed by close())."""
        for peer in self.peers:
            await peer.close()
        self.peers.clear()
        await self.server.close()

    async def close(self) -> None:
        await self.stop()
        await self.http.close()

    async def post(self, path: str, body: Any, token: str | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.url + path, json=body, headers=headers) as r:
            return r.status, await r.json()

    async def user(self, name: str, password: str = PASSWORD) -> str:
        """Register ``name`` (if new) and return a fresh token for it."""
        await self.post("/api/users", {"username": name, "password": password})
        status, body = await self.post(
            "/api/tokens", {"username": name, "password": password}
        )
        assert status == 200, body
        return body["token"]

    async def peer(
        self,
        token: str | None,
        namespaces: tuple[str, ...] = (CONTROL, CHAT),
        **connect: Any,
    ) -> Peer:
        """Connect a new device; waits for ``welcome`` when /control is included."""
        client = socketio.AsyncClient(reconnection=False)
        peer = Peer(client)
        client.on("*", peer.record, namespace="*")
        if token is not None:
            connect.setdefault("auth", {"token": token})
        await client.connect(
            self.url, namespaces=list(namespaces), wait_timeout=TIMEOUT, **connect
        )
        self.peers.append(peer)
        return peer

    async def member(self, token: str) -> tuple[Peer, dict]:
        """Connect a device and take its welcome."""
        peer = await self.peer(token)
        return peer, await peer.next(CONTROL, "welcome")


@pytest.fixture
def config(sqlite_url: str) -> Config:
    return Config(database_url=sqlite_url, rate_limit=1000, rate_burst=1000)


@pytest.fixture
async def chatsio(config: Config) -> AsyncIterator[Harness]:
    harness = await Harness(config).start()
    yield harness
    await harness.close()


@pytest.fixture
def make_config(sqlite_url: str):
    def make(**changes: Any) -> Config:
        return replace(Config(database_url=sqlite_url), **changes)

    return make


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture):
    """The server's log records; tests assert no traceback appeared."""
    caplog.set_level(logging.INFO, logger="chatsio")
    return caplog


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.exc_info or record.levelno >= logging.ERROR
    ]
