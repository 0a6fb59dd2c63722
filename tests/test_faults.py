"""Faults that real deployments see, each with its pass criterion (issue 4).

Redis faults use a private redis-server on its own port; PostgreSQL loss goes
through a TCP proxy that the test cuts. "Nothing lost": every message acked ok
is stored once with gapless seq, and every member ends with one copy of each,
live or through ``join`` + ``since``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from urllib.parse import urlsplit

import pytest
from cluster import Node, RedisServer, TcpProxy, close_all, device, register, wait_until
from conftest import TIMEOUT

from chatsio.protocol import CHAT, CONTROL

RECOVERY = 5.0  # cross-node delivery must resume this soon after a fault clears


@pytest.fixture
async def redis_server(tmp_path):
    server = await RedisServer(tmp_path).start()
    yield server
    server.thaw()
    await server.stop()


@pytest.fixture
async def proxy(postgres_url):
    parts = urlsplit(postgres_url)
    tcp = await TcpProxy(parts.hostname, parts.port or 5432).start()
    yield tcp
    await tcp.close()


@pytest.fixture
async def nodes(tmp_path, postgres_url, redis_server, proxy):
    """Node a reaches PostgreSQL through the proxy; node b directly."""
    parts = urlsplit(postgres_url)
    proxied = postgres_url.replace(
        f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}"
    )
    started = []
    try:
        for name, url in (("a", proxied), ("b", postgres_url)):
            env = {"DATABASE_URL": url, "REDIS_URL": redis_server.url}
            started.append(await Node(name, tmp_path, env).start())
        yield started
    finally:
        for node in started:
            await node.stop(signal.SIGKILL)


@pytest.fixture
async def peers():
    opened = []
    yield opened
    await close_all(opened)


class Room:
    """alice on node a (two devices), bob on node b, all in one joined chat."""

    def __init__(self, nodes, peers):
        self.a, self.b = nodes
        self.peers = peers

    async def open(self) -> Room:
        self.alice_token = await register(self.a, "alice")
        self.bob_token = await register(self.b, "bob")
        self.alice = await self.connect(self.a, self.alice_token)
        self.alice2 = await self.connect(self.a, self.alice_token)
        self.bob = await self.connect(self.b, self.bob_token)
        ack = await self.alice.call(CONTROL, "start", {"members": ["bob"]})
        self.id = ack["chat"]["id"]
        for peer in (self.alice, self.alice2, self.bob):
            assert (await peer.call(CHAT, "join", {"id": self.id}))["ok"]
        return self

    async def connect(self, node, token):
        peer = await device(node, token)
        self.peers.append(peer)
        return peer

    async def send(self, peer, text: str, **extra) -> tuple[dict, float]:
        started = time.monotonic()
        ack = await peer.call(
            CHAT, "notify", {"id": self.id, "kind": "message", "text": text, **extra}
        )
        return ack, time.monotonic() - started

    async def crosses(self) -> bool:
        """Does a message from alice (node a) reach bob (node b) live?"""
        ack, _ = await self.send(self.alice, "probe")
        assert ack["ok"], ack
        sent = ack["message"]["seq"]
        try:
            while True:
                got = await asyncio.wait_for(self.bob.next(CHAT, "notify"), 0.5)
                if got["seq"] >= sent:  # one chat's messages arrive in seq order
                    return got["seq"] == sent
        except TimeoutError:
            return False

    async def history(self, peer, since: int = 0) -> list[dict]:
        ack = await peer.call(CHAT, "join", {"id": self.id, "since": since})
        assert ack["ok"], ack
        return ack["messages"]


def failing_lines(node: Node, path: str) -> int:
    return len(re.findall(rf"redis {path} failing", node.text()))


async def health_of(node: Node) -> dict:
    return (await node.health())[1]


@pytest.mark.parametrize("outage", [3, 70], ids=["3s", "70s"])
async def test_redis_stopping_degrades_and_recovers(nodes, peers, redis_server, outage):
    room = await Room(nodes, peers).open()
    assert await room.crosses()
    bob_seen = (await room.history(room.bob))[-1]["seq"]
    room.bob.received(CHAT, "notify")
    room.alice2.received(CHAT, "notify")

    await redis_server.stop()
    acked = []
    deadline = time.monotonic() + outage
    n = 0
    while time.monotonic() < deadline:
        ack, took = await room.send(room.alice, f"during {n}")
        assert ack["ok"], ack
        assert took < 1.0, f"an ack waited {took:.2f} s on a stopped Redis"
        # Node a still serves its own sockets live.
        assert (await room.alice2.next(CHAT, "notify"))["seq"] == ack["message"]["seq"]
        acked.append(ack["message"])
        n += 1
        await asyncio.sleep(0.2)  # a person typing, not a flood
    assert await health_of(room.a) == {
        "status": "degraded",
        "database": "ok",
        "redis": "down",
    }
    for node in nodes:
        assert failing_lines(node, "publish") <= 1
        assert failing_lines(node, "listen") <= 1

    await redis_server.start()
    restarted = time.monotonic()
    await wait_until(room.crosses, within=RECOVERY, every=0)
    assert time.monotonic() - restarted < RECOVERY
    await wait_until(lambda: _ok(room.a), within=RECOVERY)
    missed = await room.history(room.bob, since=bob_seen)
    texts = [m["text"] for m in missed]
    assert texts[: len(acked)] == [m["text"] for m in acked]
    seqs = [m["seq"] for m in missed]
    assert seqs == list(range(bob_seen + 1, bob_seen + 1 + len(missed)))


async def _ok(node: Node) -> bool:
    return (await health_of(node))["status"] == "ok"


async def test_a_hung_redis_never_holds_an_ack(nodes, peers, redis_server):
    room = await Room(nodes, peers).open()
    assert await room.crosses()
    redis_server.freeze()
    try:
        for n in range(15):
            ack, took = await room.send(room.alice, f"frozen {n}")
            assert ack["ok"] and took < 1.0, (ack, took)
            await asyncio.sleep(0.2)
        status, body = await room.a.health()
        assert status == 200 and body["redis"] == "down"
    finally:
        redis_server.thaw()
    thawed = time.monotonic()
    await wait_until(room.crosses, within=RECOVERY, every=0)
    assert time.monotonic() - thawed < RECOVERY
    assert failing_lines(room.a, "publish") <= 1


async def test_repeated_redis_faults_leak_nothing(nodes, peers, redis_server):
    room = await Room(nodes, peers).open()
    assert await room.crosses()
    files = [node.open_files() for node in nodes]
    connections = await redis_server.clients()
    stop = asyncio.Event()

    async def load():
        n = 0
        while not stop.is_set():
            ack, took = await room.send(room.alice, f"load {n}")
            assert ack["ok"] and took < 1.0, (ack, took)
            n += 1
            await asyncio.sleep(0.05)

    loader = asyncio.create_task(load())
    try:
        for cycle in range(20):
            if cycle % 2:
                redis_server.freeze()
                await asyncio.sleep(1.5)  # long enough for timeouts to fire
                redis_server.thaw()
            else:
                await redis_server.stop()
                await redis_server.start()
            await wait_until(room.crosses, within=10, every=0)
    finally:
        stop.set()
        await loader
    await wait_until(lambda: _ok(room.a), within=RECOVERY)
    await wait_until(lambda: _ok(room.b), within=RECOVERY)
    after = [node.open_files() for node in nodes]
    assert all(abs(x - y) <= 5 for x, y in zip(after, files, strict=True)), (
        files,
        after,
    )
    assert abs(await redis_server.clients() - connections) <= 5


async def test_a_killed_pubsub_connection_is_noticed_and_replaced(
    nodes, peers, redis_server
):
    room = await Room(nodes, peers).open()
    assert await room.crosses()
    killed = await redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) >= 2  # one listener per node
    started = time.monotonic()
    await wait_until(room.crosses, within=RECOVERY, every=0)
    assert time.monotonic() - started < RECOVERY
    assert failing_lines(room.b, "listen") == 1
    assert "redis listen working again" in room.b.text()


async def test_losing_postgresql_answers_internal_and_recovers(nodes, peers, proxy):
    room = await Room(nodes, peers).open()
    first, _ = await room.send(room.alice, "before")
    assert first["ok"]

    await proxy.cut()
    for n in range(3):
        ack, took = await room.send(room.alice, f"while down {n}", client_id=f"d{n}")
        assert not ack["ok"] and ack["error"]["code"] == "internal", ack
        assert took < 2.0, took
    status, body = await room.a.health()
    assert status == 503 and body["database"] == "down"
    assert room.a.running

    await proxy.restore()

    async def posts():
        ack, _ = await room.send(room.alice, "after", client_id="after")
        return ack["ok"]

    await wait_until(posts, within=RECOVERY)
    assert (await room.a.health())[0] == 200
    texts = [m["text"] for m in await room.history(room.bob, since=0)]
    assert texts == ["before", "after"]  # nothing that failed was stored


async def test_a_killed_node_loses_nothing_that_was_acked(nodes, peers):
    room = await Room(nodes, peers).open()
    a, b = nodes
    received = {}
    sent = []

    async def talk(count):
        for _n in range(count):
            ack, _ = await room.send(
                room.alice, f"m{len(sent)}", client_id=f"m{len(sent)}"
            )
            assert ack["ok"], ack
            sent.append(ack["message"])

    await talk(10)
    for _ in range(10):
        message = await room.bob.next(CHAT, "notify")
        received[message["seq"]] = message
    await b.stop(signal.SIGKILL)  # bob's node dies
    await talk(10)  # alice goes on while bob is cut off

    bob_again = await room.connect(a, room.bob_token)  # reconnects elsewhere
    caught_up = await room.history(bob_again, since=max(received))
    for message in caught_up:
        assert message["seq"] not in received
        received[message["seq"]] = message
    assert sorted(received) == [m["seq"] for m in sent]
    assert [received[m["seq"]]["text"] for m in sent] == [m["text"] for m in sent]


async def test_sigterm_tells_sockets_and_exits_promptly(nodes, peers):
    room = await Room(nodes, peers).open()
    a = nodes[0]
    stalled = await stalled_upload(a)
    pending = [
        asyncio.create_task(room.send(room.alice, f"last {n}", client_id=f"l{n}"))
        for n in range(10)
    ]
    await asyncio.sleep(0)  # the sends are on the wire
    started = time.monotonic()
    a.send(signal.SIGTERM)
    notice = await room.alice.next(CONTROL, "notify")
    assert notice["kind"] == "notification" and notice["id"] is None
    code = await asyncio.wait_for(a.proc.wait(), 10)
    assert code == 0 and time.monotonic() - started < 10
    stalled.close()

    results = await asyncio.gather(*pending, return_exceptions=True)
    acked = [
        r[0]["message"]["text"] for r in results if isinstance(r, tuple) and r[0]["ok"]
    ]
    stored = [m["text"] for m in await room.history(room.bob, since=0)]
    assert set(acked) <= set(stored)  # every ok ack was stored
    assert len(stored) == len(set(stored))


async def stalled_upload(node: Node):
    """An Engine.IO polling session whose POST promises 100 KB and sends 10 B."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
    body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
    sid = re.search(rb'"sid":"([^"]+)"', body).group(1).decode()
    writer.write(
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
        "Host: x\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        "40/chat,{}".encode()
    )
    await writer.drain()
    return writer


async def test_a_dead_listener_task_is_restarted(redis_server, make_config, caplog):
    """In process, to kill the listener task itself rather than its connection."""
    from conftest import Harness

    from chatsio.app import sio_key

    harness = await Harness(make_config(redis_url=redis_server.url)).start()
    try:
        bus = harness.server.app[sio_key].manager.chatsio_bus
        dead = bus.listener
        dead.cancel()

        async def health():
            async with harness.http.get(harness.url + "/api/health") as response:
                return (await response.json())["redis"]

        await wait_until(lambda: _is(health(), "down"), within=2)  # health shows it
        await wait_until(lambda: _is(health(), "ok"), within=RECOVERY)
        assert bus.listener is not dead and not bus.listener.done()
        assert "the listener task stopped" in caplog.text
    finally:
        await harness.close()


async def _is(answer, expected) -> bool:
    return await answer == expected
