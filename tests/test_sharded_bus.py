"""A node pays only for the rooms it hosts (issue 19, items 1, 2 and 4).

Room traffic crosses on one sharded channel per room (SPUBLISH), which a node
subscribes to (SSUBSCRIBE) while the room has members on it; deployment-wide
events keep the one broadcast channel. Nodes here run on a private Redis.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
import redis.asyncio
import test_cluster
import test_faults
from cluster import Node, api, device, register, wait_until
from conftest import TIMEOUT, Harness
from test_cluster import call_ok

from chatsio.app import sio_key
from chatsio.protocol import CHAT, CONTROL, chat_room, user_room

redis_server = test_faults.redis_server
nodes, peers = test_cluster.nodes, test_cluster.peers

RESUBSCRIBED = 5.0  # every subscription is back this soon after Redis returns
LINGER = 0.3  # a shorter wait before unsubscribing, for the in-process tests


async def received(node: Node, kind: str) -> float:
    """What the node's bus listener received of ``kind`` (its /metrics)."""
    status, body = await api(node, "GET", "/metrics")
    assert status == 200
    found = re.search(
        rf'^chatsio_bus_received_total{{kind="{kind}"}} (\S+)$', body.decode(), re.M
    )
    assert found, f"no chatsio_bus_received_total of kind {kind}"
    return float(found.group(1))


async def shard_channels(server) -> set[str]:
    return set((await server.command("PUBSUB", "SHARDCHANNELS")).split())


async def alice_and_bob(peers, alice_node: Node, bob_node: Node):
    alice = await device(alice_node, await register(alice_node, "alice"))
    bob = await device(bob_node, await register(bob_node, "bob"))
    peers.extend((alice, bob))
    return alice, bob


async def start_chat(alice, *joining) -> str:
    """alice starts a chat with bob; the chat's id, once ``joining`` joined it."""
    ack = await call_ok(alice, CONTROL, "start", {"members": ["bob"]})
    for peer in joining:
        await call_ok(peer, CHAT, "join", {"id": ack["chat"]["id"]})
    return ack["chat"]["id"]


async def test_an_idle_node_receives_none_of_a_busy_nodes_room_traffic(
    nodes, peers, redis_server
):
    busy, idle = nodes
    alice, bob = await alice_and_bob(peers, busy, busy)
    chat_id = await start_chat(alice, alice, bob)
    for n in range(20):
        payload = {"id": chat_id, "kind": "message", "text": f"m{n}"}
        await call_ok(alice, CHAT, "notify", payload)
        await call_ok(bob, CHAT, "typing", {"id": chat_id})
    # The busy node hears its own publications (it hosts the room): Redis has
    # handed them to every subscriber. A broadcast published after them reaches
    # the idle node after anything of theirs would have (counted undecoded).
    await wait_until(lambda: _at_least(received(busy, "room"), 40), within=TIMEOUT)
    client = redis.asyncio.from_url(redis_server.url)
    try:
        await client.publish("chatsio", "barrier")
    finally:
        await client.aclose()
    await wait_until(lambda: _at_least(received(idle, "broadcast"), 1), within=TIMEOUT)
    assert await received(idle, "room") == 0


async def _at_least(count, floor: float) -> bool:
    return await count >= floor


async def test_a_node_subscribes_to_the_rooms_of_its_sockets_and_no_others(
    nodes, peers, redis_server
):
    alice, _ = await alice_and_bob(peers, *nodes)
    chat_id = await start_chat(alice, alice)
    room = f"chatsio:room:{chat_room(chat_id)}"
    users = {f"chatsio:room:{user_room(name)}" for name in ("alice", "bob")}
    assert await shard_channels(redis_server) == {room, *users}
    numbers = await redis_server.command("PUBSUB", "SHARDNUMSUB", room, *users)
    assert numbers.split()[1::2] == ["1", "1", "1"]  # one node each


async def test_a_restarted_redis_has_every_subscription_back_within_5s(
    nodes, peers, redis_server
):
    alice, bob = await alice_and_bob(peers, *nodes)
    for _ in range(3):
        await start_chat(alice, alice, bob)
    before = await shard_channels(redis_server)
    assert len(before) == 5  # three chats, two users
    hosts = {c: 1 if ":user:" in c else 2 for c in before}  # chats: both nodes
    await redis_server.stop()
    await redis_server.start()
    restarted = time.monotonic()
    await wait_until(
        lambda: _equal(shard_channels(redis_server), before), within=RESUBSCRIBED
    )
    numbers = (await redis_server.command("PUBSUB", "SHARDNUMSUB", *hosts)).split()
    assert dict(zip(numbers[::2], map(int, numbers[1::2]), strict=True)) == hosts
    assert time.monotonic() - restarted < RESUBSCRIBED


async def _equal(answer, expected) -> bool:
    return await answer == expected


async def test_a_join_then_the_other_nodes_message_arrives_live(nodes, peers):
    alice, bob = await alice_and_bob(peers, *nodes)
    for n in range(10):
        chat_id = await start_chat(alice, alice)
        await call_ok(bob, CHAT, "join", {"id": chat_id})  # a new room on b
        payload = {"id": chat_id, "kind": "message", "text": f"right after {n}"}
        sent = await call_ok(alice, CHAT, "notify", payload)
        assert await bob.next(CHAT, "notify") == sent["message"]


async def test_a_fresh_connection_gets_the_next_invite(nodes, peers):
    a, b = nodes
    alice = await device(a, await register(a, "alice"))
    peers.append(alice)
    bob_token = await register(b, "bob")
    for _ in range(5):
        bob = await device(b, bob_token)  # its user room is new on b
        peers.append(bob)
        ack = await call_ok(alice, CONTROL, "start", {"members": ["bob"]})
        assert (await bob.next(CONTROL, "invite"))["chat"]["id"] == ack["chat"]["id"]
        await bob.client.disconnect()


@pytest.fixture
async def harness(make_config, redis_server):
    started = await Harness(make_config(redis_url=redis_server.url)).start()
    manager = started.server.app[sio_key].manager
    manager.chatsio_bus.rooms.linger = LINGER
    yield started
    await started.close()


async def test_entering_a_room_returns_once_redis_delivers_its_messages(
    harness, redis_server
):
    manager = harness.server.app[sio_key].manager
    client = redis.asyncio.from_url(redis_server.url)
    try:
        for n in range(20):
            room = chat_room(f"fresh{n}")
            await manager.enter_room(f"s{n}", CHAT, room, eio_sid=f"e{n}")
            # Published right after: Redis already has this node listening.
            assert await client.spublish(f"chatsio:room:{room}", "{}") == 1
    finally:
        await client.aclose()


async def test_rooms_are_subscribed_in_batches_and_dropped_after_lingering(
    harness, redis_server
):
    manager = harness.server.app[sio_key].manager
    await redis_server.command("CONFIG", "RESETSTAT")
    rooms = [chat_room(f"batch{n}") for n in range(50)]
    await asyncio.gather(
        *(
            manager.enter_room(f"s{n}", CHAT, room, eio_sid=f"e{n}")
            for n, room in enumerate(rooms)
        )
    )
    channels = {f"chatsio:room:{room}" for room in rooms}
    assert await shard_channels(redis_server) == channels
    assert await commands(redis_server, "ssubscribe") == 1

    # Left and entered again at once (a reconnect): nothing is unsubscribed.
    manager.basic_leave_room("s0", CHAT, rooms[0])
    await manager.enter_room("s0", CHAT, rooms[0], eio_sid="e0")
    for n, room in enumerate(rooms[1:], 1):
        manager.basic_leave_room(f"s{n}", CHAT, room)
    left = time.monotonic()
    await wait_until(
        lambda: _equal(shard_channels(redis_server), {f"chatsio:room:{rooms[0]}"}),
        within=TIMEOUT,
    )
    assert time.monotonic() - left >= LINGER
    # 49 rooms left within microseconds of each other: one command, or two
    # when their lingers end either side of one of the syncer's rounds.
    assert 1 <= await commands(redis_server, "sunsubscribe") <= 2
    assert await commands(redis_server, "ssubscribe") == 1


async def commands(server, name: str) -> int:
    """How many times Redis ran command ``name`` since its stats were reset."""
    stats = await server.command("INFO", "commandstats")
    found = re.search(rf"^cmdstat_{name}:calls=(\d+)", stats, re.M)
    return int(found.group(1)) if found else 0
