"""Presence across nodes (issue 20): two real ``chatsio serve`` processes
sharing PostgreSQL and a private Redis (docs/protocol.md, "Presence and read
state"). A user is online while any of their /control connections is open on
any node; a node's death or a Redis outage delays presence, never loses it."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime

import pytest
import socketio
import test_faults
from cluster import api, register, running_nodes
from conftest import TIMEOUT, Peer

from chatsio.protocol import CONTROL, now_ms

GRACE = 1.0  # CHATSIO_PRESENCE_GRACE (5 s by default)
# A SIGKILLed node's users are offline this soon (PROTOCOL.md).
DEATH_BOUND = 30.0
OUTAGE = 10.0
# After Redis returns: the presence reconciler retries every 2 s, the
# directory's heartbeat every second while failing.
CONVERGES_WITHIN = 10.0

redis_server = test_faults.redis_server
peers = test_faults.peers


@pytest.fixture
async def nodes(tmp_path, postgres_url, redis_server):
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server.url,
        "CHATSIO_PRESENCE_GRACE": str(GRACE),
    }
    async with running_nodes(tmp_path, env) as started:
        yield started


async def connect(peers, node, token) -> Peer:
    return (await connect_welcomed(peers, node, token))[0]


async def connect_welcomed(peers, node, token) -> tuple[Peer, dict]:
    """A /control connection to ``node``, and its ``welcome``."""
    client = socketio.AsyncClient(reconnection=False)
    peer = Peer(client)
    peers.append(peer)
    client.on("*", peer.record, namespace="*")
    await client.connect(
        node.url, auth={"token": token}, namespaces=[CONTROL], wait_timeout=TIMEOUT
    )
    return peer, await peer.next(CONTROL, "welcome")


async def welcome(peers, node, token) -> dict:
    return (await connect_welcomed(peers, node, token))[1]


async def share_chat(node, token: str, *members: str) -> None:
    status, body = await api(
        node, "POST", "/api/chats", token, json={"members": list(members)}
    )
    assert status == 201, body


async def users(node, *names: str) -> dict[str, str]:
    return {name: await register(node, name) for name in names}


async def next_presence(peer, user: str, within: float = TIMEOUT) -> dict:
    """The next ``presence`` about ``user`` (others skipped)."""
    async with asyncio.timeout(within):
        while True:
            event = await peer.events[(CONTROL, "presence")].get()
            if event["user"] == user:
                return event


async def rest_presence(node, token: str, *names: str) -> list[dict]:
    query = ",".join(names)
    status, body = await api(node, "GET", f"/api/presence?users={query}", token)
    assert status == 200, body
    return json.loads(body)


def ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


async def test_presence_on_one_node_is_seen_on_the_other(nodes, peers):
    a, b = nodes
    tokens = await users(a, "alice", "bob", "carol")
    await share_chat(a, tokens["alice"], "bob")
    bob = await connect(peers, b, tokens["bob"])
    carol = await connect(peers, b, tokens["carol"])  # shares no chat

    alice = await connect(peers, a, tokens["alice"])
    online = {"user": "alice", "online": True, "last_seen": None}
    assert await next_presence(bob, "alice") == online
    assert await rest_presence(b, tokens["bob"], "alice") == [online]
    assert (await welcome(peers, b, tokens["bob"]))["presence"] == [online]

    # Online while any connection is open, on any node: one on b, a's closed.
    alice_on_b = await connect(peers, b, tokens["alice"])
    await alice.close()
    await asyncio.sleep(GRACE + 1.0)  # past the grace: no event may come
    assert bob.received(CONTROL, "presence") == []
    closed = now_ms()
    await alice_on_b.close()
    offline = await next_presence(bob, "alice", within=GRACE + TIMEOUT)
    assert offline["online"] is False
    assert closed <= ms(offline["last_seen"]) <= now_ms()
    assert await rest_presence(b, tokens["bob"], "alice") == [offline]

    # Carol, on the node that told bob, learnt nothing by event or route.
    assert carol.received(CONTROL, "presence") == []
    assert await rest_presence(b, tokens["carol"], "alice", "bob") == []
    assert (await welcome(peers, b, tokens["carol"]))["presence"] == []


async def test_a_killed_nodes_only_user_goes_offline_within_30s(nodes, peers):
    a, b = nodes
    tokens = await users(a, "alice", "bob", "dave")
    await share_chat(a, tokens["bob"], "alice", "dave")
    bob = await connect(peers, b, tokens["bob"])
    await connect(peers, a, tokens["alice"])  # on a only
    await connect(peers, a, tokens["dave"])
    await connect(peers, b, tokens["dave"])  # on both
    assert (await next_presence(bob, "alice"))["online"] is True
    assert (await next_presence(bob, "dave"))["online"] is True

    killed = now_ms()
    await a.stop(signal.SIGKILL)
    offline = await next_presence(bob, "alice", within=DEATH_BOUND)
    assert offline["online"] is False
    assert killed <= ms(offline["last_seen"]) <= killed + DEATH_BOUND * 1000
    assert now_ms() - killed < DEATH_BOUND * 1000
    assert await rest_presence(b, tokens["bob"], "alice", "dave") == [
        offline,
        {"user": "dave", "online": True, "last_seen": None},
    ]
    assert [e["user"] for e in bob.received(CONTROL, "presence")] == []


async def test_presence_converges_after_a_redis_outage(nodes, peers, redis_server):
    """Redis stopped for 10 s, started again empty: what changed meanwhile
    reaches the other node, with no restart of anything."""
    a, b = nodes
    tokens = await users(a, "alice", "bob", "carol")
    await share_chat(a, tokens["bob"], "alice", "carol")
    bob = await connect(peers, b, tokens["bob"])
    alice = await connect(peers, a, tokens["alice"])
    assert (await next_presence(bob, "alice"))["online"] is True

    await redis_server.stop()
    stopped = asyncio.get_running_loop().time()
    closed = now_ms()
    await alice.close()  # offline during the outage, on a
    carol = await connect(peers, a, tokens["carol"])  # online meanwhile, on a
    await asyncio.sleep(OUTAGE - (asyncio.get_running_loop().time() - stopped))
    await redis_server.start()

    offline = await next_presence(bob, "alice", within=CONVERGES_WITHIN)
    assert offline["online"] is False
    assert closed <= ms(offline["last_seen"]) <= closed + (GRACE + 1) * 1000
    assert (await next_presence(bob, "carol", within=CONVERGES_WITHIN))["online"]
    assert await rest_presence(b, tokens["bob"], "alice", "carol") == [
        offline,
        {"user": "carol", "online": True, "last_seen": None},
    ]
    # Redis came back empty: b registered bob again, and a knows.
    assert (await next_presence(carol, "bob", within=CONVERGES_WITHIN))["online"]
    assert await rest_presence(a, tokens["carol"], "bob") == [
        {"user": "bob", "online": True, "last_seen": None}
    ]


async def test_a_node_stopping_does_not_make_its_users_leave_and_come_back(
    nodes, peers
):
    """A graceful stop (a rolling restart) leaves the node's users in the
    directory until its registration expires: alice, reconnecting to the
    other node within the grace, is never seen going offline."""
    a, b = nodes
    tokens = await users(a, "alice", "bob")
    await share_chat(a, tokens["alice"], "bob")
    bob = await connect(peers, b, tokens["bob"])
    await connect(peers, a, tokens["alice"])
    assert (await next_presence(bob, "alice"))["online"] is True

    await a.stop(signal.SIGTERM)
    await connect(peers, b, tokens["alice"])  # as her client reconnects
    await asyncio.sleep(GRACE + 1.0)  # past the grace: no event may come
    assert bob.received(CONTROL, "presence") == []
    assert (await rest_presence(b, tokens["bob"], "alice"))[0]["online"] is True
