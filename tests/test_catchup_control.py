"""A member with only /control sockets on a node catches up after a Redis
outage too (issues 19 and 20).

bob's one socket on node b is a /control one: he has joined no chat's room
there, so the room catch-up has nothing of his to read. Chats started and
ended while Redis was out reach him all the same within RECOVERY of Redis
coming back: an ``invite`` as ``start`` sends it (the chat as he sees it, the
others' presence) and a ``terminate``, once each. A chat he was invited to
live, well before the outage, is not invited again.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import test_cluster
import test_faults
from cluster import device, register, wait_until
from conftest import TIMEOUT
from test_bus_recovery import RECOVERY, healthy, nothing_more
from test_cluster import call_ok

from chatsio.protocol import CHAT, CONTROL
from chatsio.storage import open_storage
from chatsio.storage.records import ChatChange
from chatsio.transport import catchup

redis_server = test_faults.redis_server
nodes, peers = test_cluster.nodes, test_cluster.peers

OUTAGE = 10.0
SHORT_OUTAGE = 3.0


async def open_device(peers, node, token, namespaces=(CONTROL, CHAT)):
    peer = await device(node, token, namespaces)
    peers.append(peer)
    return peer


async def test_a_control_only_member_hears_of_chats_started_and_ended_meanwhile(
    nodes, peers, redis_server
):
    a, b = nodes
    alice = await open_device(peers, a, await register(a, "alice"))
    bob = await open_device(peers, b, await register(b, "bob"), (CONTROL,))
    before = await call_ok(alice, CONTROL, "start", {"members": ["bob"]})
    ending = before["chat"]["id"]
    assert (await bob.next(CONTROL, "invite"))["chat"]["id"] == ending

    await redis_server.stop(signal.SIGKILL)
    await asyncio.sleep(0.5)  # the outage has begun: nodes publish into nothing
    async with asyncio.timeout(TIMEOUT):
        started = await call_ok(
            alice, CONTROL, "start", {"members": ["bob"], "title": "meanwhile"}
        )
        await call_ok(alice, CONTROL, "terminate", {"id": ending})
    await asyncio.sleep(OUTAGE)
    assert bob.received(CONTROL, "invite") == []  # nothing crossed meanwhile
    assert bob.received(CONTROL, "terminate") == []
    await redis_server.start()  # on the same port; no node restarts
    back = time.monotonic()

    async with asyncio.timeout(RECOVERY):
        invite = await bob.next(CONTROL, "invite")
        terminate = await bob.next(CONTROL, "terminate")
    took = time.monotonic() - back
    assert took < RECOVERY, f"bob heard {took:.1f} s after redis came back"
    assert invite["by"] == "alice"
    assert invite["chat"] == started["chat"]
    assert [seen["user"] for seen in invite["presence"]] == ["alice"]
    assert terminate == {"id": ending, "by": "alice"}

    # Once each: later catch-ups (the other node's, asked for when its
    # publishing came back) send neither again.
    for node in nodes:
        await wait_until(lambda n=node: healthy(n), within=RECOVERY)
    assert await nothing_more(bob, CONTROL, "invite") == []
    assert await nothing_more(bob, CONTROL, "terminate") == []


async def test_a_chat_invited_to_before_the_outage_is_not_invited_again(
    nodes, peers, redis_server
):
    """The catch-up's window starts at the outage (less the margin), not at
    the node's start: bob, invited live to ``known`` and not in its room,
    gets only the invite of the chat started during the outage."""
    a, b = nodes
    alice = await open_device(peers, a, await register(a, "alice"))
    bob = await open_device(peers, b, await register(b, "bob"), (CONTROL,))
    known = (await call_ok(alice, CONTROL, "start", {"members": ["bob"]}))["chat"]
    assert (await bob.next(CONTROL, "invite"))["chat"]["id"] == known["id"]
    await asyncio.sleep(catchup.CLOCK_MARGIN / 1000 + 1)  # older than the window

    await redis_server.stop(signal.SIGKILL)
    await asyncio.sleep(0.5)  # the outage has begun
    async with asyncio.timeout(TIMEOUT):
        started = await call_ok(alice, CONTROL, "start", {"members": ["bob"]})
    await asyncio.sleep(SHORT_OUTAGE)
    await redis_server.start()

    invited = []
    async with asyncio.timeout(RECOVERY):
        while started["chat"]["id"] not in invited:
            invited.append((await bob.next(CONTROL, "invite"))["chat"]["id"])
    for node in nodes:  # a's publishing back too: b caught up at its hint too
        await wait_until(lambda n=node: healthy(n), within=RECOVERY)
    invited += [i["chat"]["id"] for i in await nothing_more(bob, CONTROL, "invite")]
    assert invited == [started["chat"]["id"]]


async def test_the_store_finds_the_chats_started_or_ended_since_a_time(
    any_database_url,
):
    storage = await open_storage(any_database_url)
    try:
        for name in ("alice", "bob", "carol"):
            await storage.users.create(name, "hash", is_admin=False, now=0)

        async def chat(created_at: int, *names: str) -> str:
            chat_id = str(uuid.uuid4())
            await storage.chats.create(chat_id, None, names[0], list(names), created_at)
            return chat_id

        old = await chat(100, "alice", "bob")
        new = await chat(2000, "alice", "bob", "carol")
        ended_lately = await chat(200, "carol", "bob")
        ended_long_ago = await chat(300, "alice", "bob")
        await storage.messages.end_chat(ended_lately, "bye", 3000, "carol")
        await storage.messages.end_chat(ended_long_ago, "bye", 400, "alice")

        changed = await storage.chats.changed(1000, ["bob", "carol"])
        assert sorted(changed, key=lambda c: (c.created_at, c.member)) == [
            ChatChange(ended_lately, "bob", 200, False, "carol"),
            ChatChange(ended_lately, "carol", 200, False, "carol"),
            ChatChange(new, "bob", 2000, True, None),
            ChatChange(new, "carol", 2000, True, None),
        ]
        assert old not in {c.chat_id for c in changed}
        assert await storage.chats.changed(1000, ["nobody"]) == []
    finally:
        await storage.close()
