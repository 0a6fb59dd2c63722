"""Many nodes as one server: two real ``chatsio serve`` processes sharing
PostgreSQL and a private Redis (PROTOCOL.md, "Many nodes")."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys

import pytest
import socketio
from cluster import (
    Node,
    RedisServer,
    api,
    close_all,
    device,
    register,
    running_nodes,
)
from conftest import TIMEOUT

from chatsio.protocol import CHAT, CONTROL


@pytest.fixture
async def redis_server(tmp_path):
    server = await RedisServer(tmp_path).start()
    yield server
    await server.stop()


@pytest.fixture
async def nodes(tmp_path, postgres_url, redis_server):
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_server.url}
    async with running_nodes(tmp_path, env) as started:
        yield started


@pytest.fixture
async def peers():
    opened = []
    yield opened
    await close_all(opened)


async def connect(peers, node, token, **kwargs):
    peer = await device(node, token, **kwargs)
    peers.append(peer)
    return peer


async def call_ok(peer, namespace, event, payload):
    ack = await peer.call(namespace, event, payload)
    assert ack["ok"], ack
    return ack


@pytest.mark.parametrize("forward", [True, False], ids=["a-to-b", "b-to-a"])
async def test_every_kind_of_event_crosses_nodes(nodes, peers, forward, tmp_path):
    here, there = nodes if forward else reversed(nodes)
    alice_token = await register(here, "alice")
    bob_token = await register(there, "bob")
    alice = await connect(peers, here, alice_token)
    alice_other = await connect(peers, there, alice_token)
    bob = await connect(peers, there, bob_token)

    ack = await call_ok(alice, CONTROL, "start", {"members": ["bob"]})
    chat_id = ack["chat"]["id"]
    assert (await bob.next(CONTROL, "invite"))["chat"]["id"] == chat_id
    assert (await alice_other.next(CONTROL, "invite"))["chat"]["id"] == chat_id
    for peer in (alice, alice_other, bob):
        await call_ok(peer, CHAT, "join", {"id": chat_id})

    sent = await call_ok(
        alice, CHAT, "notify", {"id": chat_id, "kind": "message", "text": "hi"}
    )
    assert await bob.next(CHAT, "notify") == sent["message"]
    assert await alice_other.next(CHAT, "notify") == sent["message"]
    reply = await call_ok(
        bob, CHAT, "notify", {"id": chat_id, "kind": "message", "text": "yo"}
    )
    # The sender never hears its own message: its first is bob's.
    assert await alice.next(CHAT, "notify") == reply["message"]

    await call_ok(alice, CHAT, "typing", {"id": chat_id})
    assert await bob.next(CHAT, "typing") == {"id": chat_id, "user": "alice"}

    data = os.urandom(200_000)
    filed = await call_ok(
        alice,
        CHAT,
        "file",
        {
            "id": chat_id,
            "name": "x.bin",
            "type": "application/octet-stream",
            "data": data,
        },
    )
    announced = await bob.next(CHAT, "notify")
    assert announced == filed["message"]
    status, body = await api(there, "GET", announced["file"]["url"], bob_token)
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()

    admin = await admin_token(here, tmp_path)
    status, _ = await api(
        here, "POST", "/api/notifications", admin, json={"text": "maintenance"}
    )
    assert status == 202
    for peer in (alice, alice_other, bob):
        assert (await peer.next(CONTROL, "notify"))["text"] == "maintenance"

    await call_ok(alice, CONTROL, "terminate", {"id": chat_id})
    for peer in (alice, alice_other, bob):
        assert await peer.next(CONTROL, "terminate") == {"id": chat_id, "by": "alice"}
    assert (await bob.next(CHAT, "notify"))["kind"] == "notification"


async def admin_token(node: Node, tmp_path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatsio", "createuser", "root",
        "--password", "root password", "--admin",
        env={**os.environ, "DATABASE_URL": node.env["DATABASE_URL"]},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    body = {"username": "root", "password": "root password"}
    status, reply = await api(node, "POST", "/api/tokens", json=body)
    assert status == 200, reply
    return json.loads(reply)["token"]


async def test_concurrent_senders_on_two_nodes_share_one_seq(nodes, peers):
    a, b = nodes
    alice = await connect(peers, a, await register(a, "alice"))
    bob = await connect(peers, b, await register(b, "bob"))
    chat_id = (await call_ok(alice, CONTROL, "start", {"members": ["bob"]}))["chat"][
        "id"
    ]
    await call_ok(alice, CHAT, "join", {"id": chat_id})
    await call_ok(bob, CHAT, "join", {"id": chat_id})

    async def send_all(peer, who):
        return await asyncio.gather(
            *(
                call_ok(
                    peer,
                    CHAT,
                    "notify",
                    {"id": chat_id, "kind": "message", "text": f"{who}{n}"},
                )
                for n in range(100)
            )
        )

    acks_a, acks_b = await asyncio.gather(send_all(alice, "a"), send_all(bob, "b"))
    seqs = sorted(ack["message"]["seq"] for ack in acks_a + acks_b)
    assert seqs == list(range(1, 201))

    from_bob = [await alice.next(CHAT, "notify") for _ in range(100)]
    from_alice = [await bob.next(CHAT, "notify") for _ in range(100)]
    assert sorted(m["text"] for m in from_bob) == sorted(f"b{n}" for n in range(100))
    assert sorted(m["text"] for m in from_alice) == sorted(f"a{n}" for n in range(100))
    # Exactly once: after a barrier, nothing more is queued.
    await call_ok(alice, CHAT, "typing", {"id": chat_id})
    await bob.next(CHAT, "typing")
    assert bob.received(CHAT, "notify") == []


async def test_chatsio_notify_reaches_every_node(nodes, peers, redis_server):
    a, b = nodes
    on_a = await connect(peers, a, await register(a, "alice"))
    on_b = await connect(peers, b, await register(b, "bob"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatsio", "notify", "deploy at noon",
        env={"PATH": os.environ["PATH"], "REDIS_URL": redis_server.url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    for peer in (on_a, on_b):
        notice = await asyncio.wait_for(peer.next(CONTROL, "notify"), TIMEOUT)
        assert notice["text"] == "deploy at noon" and notice["id"] is None
        assert notice["kind"] == "notification"


async def test_a_stock_write_only_redis_manager_reaches_every_node(
    nodes, peers, redis_server
):
    """The bus speaks python-socketio's pub/sub format: an external emitter
    made of the library alone still reaches clients on every node."""
    a, b = nodes
    on_a = await connect(peers, a, await register(a, "alice"))
    on_b = await connect(peers, b, await register(b, "bob"))
    stock = socketio.AsyncRedisManager(
        redis_server.url, channel="chatsio", write_only=True
    )
    try:
        await stock.emit("notify", {"text": "from stock"}, namespace=CONTROL)
    finally:
        await stock.redis.aclose()
    for peer in (on_a, on_b):
        assert await peer.next(CONTROL, "notify") == {"text": "from stock"}
