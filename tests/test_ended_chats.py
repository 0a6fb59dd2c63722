"""Events on an ended chat answer ``terminated`` on every node, whatever the
bus did (issue 18, item 6): the node asks the database, not its rooms.

``join``, ``notify``, ``file`` and REST posts answer at once (the database
refuses them); ``typing``, which stores nothing, within TYPING_BOUND
(protocol.md, ``terminate``).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest
from cluster import RedisServer, close_all, device, register, running_nodes
from conftest import Harness
from helpers import error_code, fast_user, join, start_chat

from chatsio.config import Config
from chatsio.protocol import CHAT, CONTROL
from chatsio.services.activity import PRUNE_MIN, ActiveChats

TYPING_BOUND = 1.0  # protocol.md: typing answers terminated within 1 s
SLACK = 0.5  # for a loaded machine
GIVE_UP = 3.0
POLL = 0.02


async def typing_refused_after(peer, chat_id: str, ended: float) -> float:
    """Seconds from ``ended`` (a ``time.monotonic()`` reading) until ``typing``
    on the chat answers terminated, asked every POLL s. Each answer before
    that is ok: the chat was active a moment ago."""
    while time.monotonic() - ended < TYPING_BOUND + GIVE_UP:
        ack = await peer.call(CHAT, "typing", {"id": chat_id})
        if not ack["ok"]:
            assert error_code(ack) == "terminated"
            return time.monotonic() - ended
        await asyncio.sleep(POLL)  # nothing to await: the answer is the signal
    raise AssertionError("typing on an ended chat answered ok throughout")


async def assert_refused_at_once(peer, chat_id: str) -> None:
    """notify, file and join on the ended chat answer terminated."""
    for event, payload in [
        ("notify", {"id": chat_id, "text": "after the end"}),
        ("file", {"id": chat_id, "name": "a.txt", "type": "text/plain", "data": b"x"}),
        ("join", {"id": chat_id}),
    ]:
        assert error_code(await peer.call(CHAT, event, payload)) == "terminated"


# --- two apps on one database, no bus at all ------------------------------------


@pytest.fixture
async def two_apps(any_database_url):
    """Two chatsio apps on one database and no Redis: neither hears the other."""
    config = Config(database_url=any_database_url, rate_limit=1000, rate_burst=1000)
    async with AsyncExitStack() as stack:
        harnesses = []
        for _ in range(2):
            harness = await Harness(config).start()
            stack.push_async_callback(harness.close)
            harnesses.append(harness)
        yield harnesses


async def test_a_node_that_never_heard_of_the_end_refuses_every_event(two_apps):
    here, there = two_apps
    alice, _ = await here.member(await fast_user(here, "alice"))
    bob_token = await fast_user(here, "bob")
    bob, _ = await there.member(bob_token)
    chat_id = (await start_chat(alice, "bob"))["id"]
    await join(bob, chat_id)
    assert await bob.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}

    assert await alice.call(CONTROL, "terminate", {"id": chat_id}) == {"ok": True}
    ended = time.monotonic()
    await assert_refused_at_once(bob, chat_id)
    url = f"{there.url}/api/chats/{chat_id}/messages"
    headers = {"Authorization": f"Bearer {bob_token}"}
    async with there.http.post(url, json={"text": "x"}, headers=headers) as reply:
        assert reply.status == 410, await reply.text()
    assert await typing_refused_after(bob, chat_id, ended) < TYPING_BOUND + SLACK
    # What stays allowed on an ended chat stays allowed there.
    history = await bob.call(CHAT, "history", {"id": chat_id})
    assert [m["text"] for m in history["messages"]] == ["alice ended the chat"]
    assert await bob.call(CHAT, "leave", {"id": chat_id}) == {"ok": True}


async def test_typing_in_a_live_chat_keeps_reaching_the_room(two_apps):
    """The periodic re-read finds the chat active and lets typing through."""
    here, there = two_apps
    alice, _ = await here.member(await fast_user(here, "alice"))
    bob_token = await fast_user(here, "bob")
    bob, _ = await there.member(bob_token)
    bob2, _ = await there.member(bob_token)
    chat_id = (await start_chat(alice, "bob"))["id"]
    await join(bob, chat_id)
    await join(bob2, chat_id)
    started = time.monotonic()
    while time.monotonic() - started < TYPING_BOUND * 2.5:
        assert await bob.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}
        assert await bob2.next(CHAT, "typing") == {"id": chat_id, "user": "bob"}
        await asyncio.sleep(POLL)


# --- two real nodes, the termination sent while Redis is frozen -----------------


async def test_an_end_the_bus_missed_is_refused_on_the_other_node(
    tmp_path, postgres_url
):
    peers = []
    async with AsyncExitStack() as stack:
        redis = await RedisServer(tmp_path).start()
        stack.push_async_callback(redis.stop)
        env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis.url}
        a, b = await stack.enter_async_context(running_nodes(tmp_path, env))
        stack.push_async_callback(close_all, peers)
        alice = await device(a, await register(a, "alice"))
        peers.append(alice)
        bob = await device(b, await register(b, "bob"))
        peers.append(bob)
        chat_id = (await start_chat(alice, "bob"))["id"]
        await bob.next(CONTROL, "invite")
        await join(bob, chat_id)
        assert await bob.call(CHAT, "typing", {"id": chat_id}) == {"ok": True}

        redis.freeze()
        stack.callback(redis.thaw)
        assert await alice.call(CONTROL, "terminate", {"id": chat_id}) == {"ok": True}
        ended = time.monotonic()
        await assert_refused_at_once(bob, chat_id)
        assert await typing_refused_after(bob, chat_id, ended) < TYPING_BOUND + SLACK
        assert bob.received(CONTROL, "terminate") == []  # the bus missed it


# --- the table of chats seen active ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_sighting_is_trusted_for_the_ttl_only():
    clock = Clock()
    active = ActiveChats(ttl=1.0, clock=clock)
    assert not active.fresh("c")
    active.seen("c", clock.now)
    clock.now += 0.9
    assert active.fresh("c")
    clock.now += 0.2
    assert not active.fresh("c")


def test_an_older_sighting_never_replaces_a_newer_one():
    clock = Clock()
    active = ActiveChats(ttl=1.0, clock=clock)
    active.seen("c", 100.5)
    active.seen("c", 100.0)  # a slower read that began earlier
    clock.now = 101.2
    assert active.fresh("c")


def test_expired_sightings_are_dropped_as_the_table_grows():
    clock = Clock()
    active = ActiveChats(ttl=1.0, clock=clock)
    for n in range(PRUNE_MIN):
        active.seen(f"old{n}", clock.now)
    clock.now += 2.0
    for n in range(PRUNE_MIN):
        active.seen(f"new{n}", clock.now)
    assert len(active) == PRUNE_MIN  # the old ones went at 2 * PRUNE_MIN
    assert active.fresh(f"new{PRUNE_MIN - 1}")
