"""``RedisDirectory``, where presence lives across nodes (issue 20), against a
real Redis: each directory plays one node; a node that stops heartbeating is
what SIGKILL leaves. Heartbeats are sped up (EVERY, TTL) so that a sweep takes
about a second here rather than 20 s. Each test has a private redis-server
(tests/cluster.py's) to flush, stop and freeze, and its own key prefix."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
import test_faults
import test_redis_cluster
from cluster import free_port, wait_until

from chatsio.protocol import now_ms
from chatsio.transport import RedisDirectory
from chatsio.transport.redis_clients import RedisTarget

EVERY = 0.2  # heartbeat (5 s in a deployment)
TTL = 0.6  # liveness (15 s)
# A dead node's liveness expires after TTL; the next sweep, EVERY later,
# departs its users.
SWEPT_WITHIN = TTL + 3 * EVERY + 2.0
FAILS_WITHIN = 2.0  # a call on a down or frozen Redis raises within this

redis_server = test_faults.redis_server
redis_cluster = test_redis_cluster.redis_cluster


class Node:
    """One node's directory and what it called back."""

    def __init__(self, url: str, channel: str) -> None:
        self.directory = RedisDirectory(RedisTarget(url), channel, every=EVERY, ttl=TTL)
        self.gone: list[tuple[str, int]] = []
        self.lost = 0
        self.here: set[str] = set()  # arrived again on lost(), as the tracker does

    async def start(self) -> Node:
        await self.directory.start(self._gone, self._lost)
        return self

    async def arrive(self, user: str) -> bool:
        self.here.add(user)
        return await self.directory.arrive(user)

    async def _gone(self, user: str, last_seen: int) -> None:
        self.gone.append((user, last_seen))

    async def _lost(self) -> None:
        for user in self.here:
            await self.directory.arrive(user)
        self.lost += 1

    def key(self, name: str) -> str:
        """A key of the layout in docs/architecture.md ("Presence")."""
        return self.directory.prefix + name

    async def serves(self) -> bool:
        try:
            await self.directory.online(["alice"])
        except Exception:
            return False
        return True


@pytest.fixture
async def raw(redis_server):
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def nodes(redis_server):
    """``start()`` a node on the test's Redis (or ``url``), closed afterwards."""
    channel = f"test-{uuid.uuid4().hex[:8]}"
    started: list[Node] = []

    async def start(url: str | None = None) -> Node:
        node = Node(url or redis_server.url, channel)
        started.append(node)
        return await node.start()

    yield start
    for node in started:
        await node.directory.aclose()


async def test_arrive_and_depart_report_the_deployment_wide_transitions(nodes):
    a, b = await nodes(), await nodes()
    assert await a.arrive("alice") is True
    assert await b.arrive("alice") is False  # online already, on a
    assert await a.arrive("alice") is False  # a second arrive: no transition
    assert await b.directory.online(["alice", "bob"]) == {"alice"}
    assert await a.directory.depart("alice") is False  # still on b
    assert await a.directory.online(["alice"]) == {"alice"}
    assert await b.directory.depart("alice") is True
    assert await a.directory.online(["alice", "bob"]) == set()
    assert await a.directory.online([]) == set()


async def test_concurrent_arrives_and_departs_make_one_transition_each(nodes):
    many = [await nodes() for _ in range(8)]
    arrived = await asyncio.gather(*(node.arrive("alice") for node in many))
    assert arrived.count(True) == 1
    departed = await asyncio.gather(*(node.directory.depart("alice") for node in many))
    assert departed.count(True) == 1


async def test_a_silent_node_is_swept_within_the_bound(nodes, raw):
    dead, b, c = await nodes(), await nodes(), await nodes()
    await dead.arrive("alice")  # on the dead node only
    await dead.arrive("carol")
    await b.arrive("carol")  # also on b: stays online
    await b.arrive("bob")  # not on the dead node: untouched
    died = now_ms()
    await dead.directory.aclose()  # heartbeats stop; nothing is removed

    def swept() -> list[tuple[str, int]]:
        return b.gone + c.gone

    await wait_until(swept, within=SWEPT_WITHIN)
    assert [user for user, _ in swept()] == ["alice"]
    assert died <= swept()[0][1] <= now_ms()
    assert await b.directory.online(["alice", "bob", "carol"]) == {"bob", "carol"}
    assert not await raw.sismember(b.key("nodes"), dead.directory.node_id)
    assert not await raw.exists(b.key(f"users:{dead.directory.node_id}"))
    # Further sweeps find nothing more: gone was called once.
    await asyncio.sleep(TTL + 2 * EVERY)
    assert [user for user, _ in swept()] == ["alice"]
    assert b.lost == c.lost == 0


@pytest.mark.parametrize("vanish", ["flushdb", "del"])
async def test_a_vanished_registration_calls_lost(nodes, raw, vanish):
    """FLUSHDB: Redis came back empty. DEL: the node froze past its TTL. Either
    way the node registers anew and ``lost`` arrives its users again; what is
    left of the old registration is swept without a word for them."""
    a = await nodes()
    await a.arrive("alice")
    old_id = a.directory.node_id
    if vanish == "flushdb":
        await raw.flushdb()
    else:
        await raw.delete(a.key(f"node:{old_id}"))
    await wait_until(lambda: a.lost == 1, within=FAILS_WITHIN)
    assert a.directory.node_id != old_id
    assert await a.directory.online(["alice"]) == {"alice"}

    async def old_swept() -> bool:
        return not await raw.sismember(a.key("nodes"), old_id)

    await wait_until(old_swept, within=SWEPT_WITHIN)
    assert not await raw.exists(a.key(f"users:{old_id}"))
    await asyncio.sleep(TTL + 2 * EVERY)
    assert a.gone == []
    assert await a.directory.online(["alice"]) == {"alice"}
    assert await a.directory.depart("alice") is True


async def test_a_node_swept_while_frozen_comes_back_online(nodes, raw):
    """Its users went offline (the others could not know it lived); once it
    heartbeats again they are online again."""
    frozen, b = await nodes(), await nodes()
    await frozen.arrive("alice")
    await frozen.directory.aclose()  # silent, as a frozen process is
    await wait_until(lambda: b.gone, within=SWEPT_WITHIN)
    assert await b.directory.online(["alice"]) == set()
    await frozen.start()  # it thaws: its next heartbeat finds itself gone
    await wait_until(lambda: frozen.lost == 1, within=FAILS_WITHIN)
    assert await b.directory.online(["alice"]) == {"alice"}
    assert [user for user, _ in b.gone] == ["alice"]


async def fails_quickly(call) -> None:
    began = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 -- whatever the client raises
        await call
    assert time.monotonic() - began < FAILS_WITHIN


async def test_an_unreachable_redis_fails_every_call_quickly(nodes):
    began = time.monotonic()
    node = await nodes(f"redis://127.0.0.1:{free_port()}/0")
    assert time.monotonic() - began < FAILS_WITHIN  # start() does not wait on it
    await fails_quickly(node.arrive("alice"))
    await fails_quickly(node.directory.depart("alice"))
    await fails_quickly(node.directory.online(["alice"]))


async def test_a_frozen_redis_fails_calls_quickly_and_its_return_serves_again(
    nodes, redis_server
):
    a = await nodes()
    await a.arrive("alice")
    redis_server.freeze()
    await fails_quickly(a.arrive("bob"))
    await fails_quickly(a.directory.depart("alice"))
    await fails_quickly(a.directory.online(["alice"]))
    redis_server.thaw()
    await wait_until(a.serves, within=FAILS_WITHIN)
    assert await a.directory.arrive("bob") is True


async def test_a_restarted_redis_gets_the_nodes_users_back(nodes, redis_server):
    a, b = await nodes(), await nodes()
    await a.arrive("alice")
    await b.arrive("bob")
    await redis_server.stop()
    await fails_quickly(a.arrive("carol"))
    await redis_server.start()  # empty: no persistence
    await wait_until(lambda: a.lost and b.lost, within=2 * FAILS_WITHIN)
    everyone = {"alice", "bob", "carol"}
    assert await b.directory.online(everyone) == everyone  # carol: by lost()
    assert a.gone == b.gone == []


async def test_on_a_redis_cluster_transitions_and_sweeps_work_alike(
    nodes, redis_cluster
):
    dead, b = await nodes(redis_cluster.url), await nodes(redis_cluster.url)
    users = [f"user{n}" for n in range(20)]  # keys on every master
    assert await asyncio.gather(*(dead.arrive(u) for u in users)) == [True] * 20
    assert await b.arrive(users[0]) is False
    assert await b.directory.online([*users, "nobody"]) == set(users)
    await dead.directory.aclose()
    await wait_until(lambda: len(b.gone) == 19, within=SWEPT_WITHIN)
    assert sorted(user for user, _ in b.gone) == sorted(users[1:])
    assert await b.directory.online(users) == {users[0]}
    assert await b.directory.depart(users[0]) is True
