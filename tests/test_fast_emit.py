"""The direct fan-out (issue 7): one encoding per emit, frames written straight
to idle WebSockets, and everything else as before: per-socket order, polling
clients, binary events, acks requested by the server."""

from __future__ import annotations

import asyncio

import pytest
import socketio
from conftest import TIMEOUT
from helpers import fast_user, join, say, start_chat

from chatsio.app import sio_key
from chatsio.protocol import CHAT, chat_room
from chatsio.transport.engine import ChatsioEngine
from chatsio.transport.fanout import DirectFanout


@pytest.fixture
def writes(monkeypatch) -> dict[bool, int]:
    """How many frames ChatsioEngine.chatsio_write_now wrote (True) or left (False)."""
    counts = {True: 0, False: 0}
    write_now = ChatsioEngine.chatsio_write_now

    def counting(self, sid, frame):
        written = write_now(self, sid, frame)
        counts[written] += 1
        return written

    monkeypatch.setattr(ChatsioEngine, "chatsio_write_now", counting)
    return counts


@pytest.fixture
async def room(chatsio):
    """alice, and bob on WebSocket, both in one chat: (alice, bob, chat)."""
    alice, _ = await chatsio.member(await fast_user(chatsio, "alice"))
    bob, _ = await chatsio.member(await fast_user(chatsio, "bob"))
    chat = await start_chat(alice, "bob")
    await join(bob, chat["id"])
    return alice, bob, chat


def in_order(peer) -> asyncio.Queue:
    """Every /chat event ``peer`` receives, across event names, in order."""
    seen: asyncio.Queue = asyncio.Queue()

    async def record(event, *args):
        seen.put_nowait((event, args[0] if len(args) == 1 else args))

    peer.client.on("*", record, namespace=CHAT)
    return seen


async def take(seen: asyncio.Queue, count: int) -> list:
    return [await asyncio.wait_for(seen.get(), TIMEOUT) for _ in range(count)]


async def test_the_server_uses_the_direct_fanout(chatsio) -> None:
    assert isinstance(chatsio.server.app[sio_key].manager, DirectFanout)


async def test_direct_and_queued_packets_keep_each_sockets_order(
    chatsio, room, writes
) -> None:
    _, bob, chat = room
    sio = chatsio.server.app[sio_key]
    bob_eio = sio.manager.eio_sid_from_sid(bob.sid[CHAT], CHAT)
    seen = in_order(bob)
    expected = []
    for n in range(300):
        await sio.emit("burst", {"n": n}, room=chat_room(chat["id"]), namespace=CHAT)
        expected.append(("burst", {"n": n}))
        if n % 3 == 0:
            # A packet for bob alone, through his Engine.IO queue: the next
            # room emits find it there and must not overtake it.
            await sio.eio.send(
                bob_eio,
                sio.packet_class(
                    socketio.packet.EVENT, namespace=CHAT, data=["aside", n]
                ).encode(),
            )
            expected.append(("aside", n))
        if n % 50 == 0:
            await asyncio.sleep(0)  # let the writer drain now and then
    assert await take(seen, len(expected)) == expected
    assert writes[True] > 0 and writes[False] > 0, writes


async def test_a_burst_keeps_its_order_while_the_receiver_gets_its_own_acks(
    room, writes
) -> None:
    alice, bob, chat = room
    payload = {"id": chat["id"], "kind": "message", "text": "hi"}

    async def bob_busy():
        for _ in range(40):
            assert (await bob.call(CHAT, "typing", {"id": chat["id"]}))["ok"]

    acks, _ = await asyncio.gather(
        asyncio.gather(*(alice.call(CHAT, "notify", payload) for _ in range(200))),
        bob_busy(),
    )
    received = [await bob.next(CHAT, "notify") for _ in acks]
    assert [m["seq"] for m in received] == sorted(a["message"]["seq"] for a in acks)
    assert writes[True] > 0


async def test_a_polling_client_gets_every_message_in_order(chatsio, room) -> None:
    alice, bob, chat = room
    poller = await chatsio.peer(
        await fast_user(chatsio, "carol"), transports=["polling"]
    )
    chat = await start_chat(alice, "bob", "carol")
    await join(bob, chat["id"])
    await join(poller, chat["id"])
    sent = [await say(alice, chat["id"], f"m{n}") for n in range(60)]
    for peer in (bob, poller):
        got = [await peer.next(CHAT, "notify") for _ in sent]
        assert [m["seq"] for m in got] == [m["seq"] for m in sent]
    # Closed from the server's side: python-socketio's polling client takes a
    # whole ping interval (25 s) to disconnect by itself.
    sio = chatsio.server.app[sio_key]
    await sio.eio.disconnect(sio.manager.eio_sid_from_sid(poller.sid[CHAT], CHAT))


async def test_binary_events_from_the_server_still_arrive(chatsio, room) -> None:
    _, bob, chat = room
    sio = chatsio.server.app[sio_key]
    seen = in_order(bob)
    blob = bytes(range(256)) * 40
    await sio.emit("blob", {"data": blob}, room=chat_room(chat["id"]), namespace=CHAT)
    await sio.emit("after", 1, room=chat_room(chat["id"]), namespace=CHAT)
    assert await take(seen, 2) == [("blob", {"data": blob}), ("after", 1)]


async def test_a_server_emit_asking_for_an_ack_gets_it(chatsio, room) -> None:
    _, bob, _ = room
    sio = chatsio.server.app[sio_key]
    replies: asyncio.Queue = asyncio.Queue()

    async def answer(data):
        return {"echo": data}

    bob.client.on("question", answer, namespace=CHAT)
    await sio.emit(
        "question", 42, to=bob.sid[CHAT], namespace=CHAT, callback=replies.put_nowait
    )
    assert await asyncio.wait_for(replies.get(), TIMEOUT) == {"echo": 42}


async def test_an_ack_is_written_straight_to_an_idle_websocket(room, writes) -> None:
    _, bob, chat = room
    before = writes[True]
    for _ in range(5):
        assert (await bob.call(CHAT, "typing", {"id": chat["id"]}))["ok"]
    assert writes[True] >= before + 5  # his five acks: alice has not joined
