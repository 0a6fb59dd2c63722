"""Nothing lost live to a Redis outage (issue 18, items 4 and 6).

While Redis is down or frozen, what node a publishes never reaches node b.
When b's bus works again it catches up from the database: its members get
what was said meanwhile within RECOVERY of Redis coming back, once, with
nothing else said in the chat; a chat ended meanwhile ends on b too.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest
import test_cluster
import test_faults
from cluster import RedisServer, TcpProxy, device, register, wait_until
from conftest import TIMEOUT
from test_cluster import call_ok

from chatsio.protocol import (
    CHAT,
    CONTROL,
    NOTIFY,
    TERMINATE,
    chat_room,
    now_ms,
    user_room,
)
from chatsio.transport import (
    ClusterFanout,
    DeliveryLedger,
    RedisBus,
    bus,
    cluster,
    ledger,
)

# The fixtures of the fault tests: a private Redis (thawed at the end), the
# two nodes on it, the peers closed at the end.
redis_server = test_faults.redis_server
nodes, peers = test_cluster.nodes, test_cluster.peers

RECOVERY = 5.0
# A copy that would come late comes within this, once both nodes are healthy
# and a barrier has crossed (catch-ups run at once when the bus recovers).
LATE = 1.0


async def killed(redis: RedisServer, seconds: float) -> None:
    await redis.stop(signal.SIGKILL)
    await asyncio.sleep(seconds)  # the outage itself
    await redis.start()  # on the same port


async def frozen(redis: RedisServer, seconds: float) -> None:
    redis.freeze()
    await asyncio.sleep(seconds)  # the outage itself
    redis.thaw()


class QuietChats:
    """alice on node a (two devices), bob on node b; two chats of theirs, all
    three sockets joined to both: ``talk``, where alice says one thing during
    the outage, and ``ending``, which alice ends during it."""

    def __init__(self, nodes, peers) -> None:
        self.a, self.b = nodes
        self.peers = peers

    async def open(self) -> QuietChats:
        alice_token = await register(self.a, "alice")
        bob_token = await register(self.b, "bob")
        self.alice = await self.connect(self.a, alice_token)
        self.alice2 = await self.connect(self.a, alice_token)
        self.bob = await self.connect(self.b, bob_token)
        self.talk = await self.start()
        self.ending = await self.start()
        return self

    async def connect(self, node, token):
        peer = await device(node, token)
        self.peers.append(peer)
        return peer

    async def start(self) -> str:
        ack = await call_ok(self.alice, CONTROL, "start", {"members": ["bob"]})
        chat_id = ack["chat"]["id"]
        for peer in (self.alice, self.alice2, self.bob):
            await call_ok(peer, CHAT, "join", {"id": chat_id})
        return chat_id

    async def during_outage(self) -> dict:
        """alice's message in ``talk``, and ``ending`` ended; what was sent."""
        sent = await call_ok(
            self.alice,
            CHAT,
            "notify",
            {"id": self.talk, "kind": "message", "text": "while redis is out"},
        )
        await call_ok(self.alice, CONTROL, "terminate", {"id": self.ending})
        return sent["message"]

    async def settled(self) -> None:
        """Both nodes healthy, and a barrier from a to b has crossed."""
        for node in (self.a, self.b):
            await wait_until(lambda n=node: healthy(n), within=RECOVERY)
        await call_ok(self.alice, CHAT, "typing", {"id": self.talk})
        await self.bob.next(CHAT, "typing")


async def healthy(node) -> bool:
    return (await node.health())[1]["status"] == "ok"


async def notices_until(peer, count: int, within: float) -> list[dict]:
    """The first ``count`` /chat notifies ``peer`` gets, all within ``within``."""
    async with asyncio.timeout(within):
        return [await peer.next(CHAT, "notify") for _ in range(count)]


async def nothing_more(peer, namespace: str, event: str) -> list:
    """What else ``peer`` gets of ``event`` until LATE passes quietly."""
    extra = peer.received(namespace, event)
    try:
        extra.append(await asyncio.wait_for(peer.next(namespace, event), LATE))
    except TimeoutError:
        pass
    return extra


async def check_recovery(room: QuietChats, outage, seconds: float) -> None:
    async def say() -> dict:
        await asyncio.sleep(0.5)  # the outage has begun
        return await asyncio.wait_for(room.during_outage(), TIMEOUT)

    _, sent = await asyncio.gather(outage(seconds), say())
    back = time.monotonic()

    got = await notices_until(room.bob, 2, RECOVERY)  # message and end notice
    terminate = await asyncio.wait_for(room.bob.next(CONTROL, "terminate"), RECOVERY)
    took = time.monotonic() - back
    assert took < RECOVERY, f"node b caught up {took:.1f} s after redis came back"
    by_chat = {message["id"]: message for message in got}
    assert by_chat[room.talk] == sent
    assert by_chat[room.ending]["kind"] == "notification"
    assert terminate == {"id": room.ending, "by": "alice"}
    typing = await room.bob.call(CHAT, "typing", {"id": room.ending})
    assert typing["error"]["code"] == "terminated", typing  # b's room is closed

    # a's roommate had it live, once; nothing comes twice anywhere.
    seen_on_a = [
        m for m in room.alice2.received(CHAT, "notify") if m["id"] == room.talk
    ]
    assert seen_on_a == [sent]
    await room.settled()
    assert await nothing_more(room.bob, CHAT, "notify") == []
    assert await nothing_more(room.bob, CONTROL, "terminate") == []
    assert [
        m
        for m in await nothing_more(room.alice2, CHAT, "notify")
        if m["id"] == room.talk
    ] == []


@pytest.mark.parametrize(
    "outage", [killed, frozen], ids=["redis-killed-10s", "redis-frozen-10s"]
)
async def test_a_quiet_chat_catches_up_after_redis_returns(
    nodes, peers, redis_server, outage
):
    room = await QuietChats(nodes, peers).open()
    await check_recovery(room, lambda s: outage(redis_server, s), 10)


async def test_a_quiet_chat_catches_up_after_a_70s_redis_outage(
    nodes, peers, redis_server
):
    room = await QuietChats(nodes, peers).open()
    await check_recovery(room, lambda s: killed(redis_server, s), 70)


async def test_a_node_whose_publishing_failed_dates_the_others_catch_up(
    redis_server,
):
    """Only a's publishing fails (its connection to Redis cut, b's fine):
    when it works again, b is asked to catch up from when a's first failed,
    not from any later failure of the same outage."""
    proxy = await TcpProxy("127.0.0.1", redis_server.port).start()
    a = ClusterFanout(RedisBus(f"redis://127.0.0.1:{proxy.port}/0"))  # write-only
    b = ClusterFanout(RedisBus(redis_server.url))
    asked: asyncio.Queue[int] = asyncio.Queue()
    try:
        await b.chatsio_start(asked.put_nowait, within=TIMEOUT)
        await proxy.cut()
        before = now_ms()
        a.chatsio_bus.publish({"method": "lost"})
        await wait_until(lambda: "publish" in a.chatsio_bus.faults, within=TIMEOUT)
        failed = now_ms()
        a.chatsio_bus.publish({"method": "lost too"})
        await wait_until(lambda: a.chatsio_bus.dropped == 2, within=TIMEOUT)
        await proxy.restore()
        since = await asyncio.wait_for(asked.get(), RECOVERY)
        assert before <= since <= failed
        assert asked.empty()  # b's own listening never failed
    finally:
        await a.chatsio_bus.aclose()
        await b.chatsio_bus.aclose()
        await proxy.close()


async def test_an_undated_catch_up_hint_reaches_back_a_bounded_window(redis_server):
    """A node of the previous version says no since: catch up UNDATED_WINDOW."""
    b = ClusterFanout(RedisBus(redis_server.url))
    asked: list[int] = []
    try:
        await b.chatsio_start(asked.append, within=TIMEOUT)
        before = now_ms()
        await b.chatsio_receive({"host_id": "old", "method": cluster.CATCH_UP})
        after = now_ms()
    finally:
        await b.chatsio_bus.aclose()
    [since] = asked
    assert before - cluster.UNDATED_WINDOW <= since <= after - cluster.UNDATED_WINDOW


def test_the_ledger_passes_each_seq_of_a_joined_room_once_in_any_order():
    ledger = DeliveryLedger()
    room = chat_room("c")

    def admitted(*seqs: int) -> list[int]:
        return [s for s in seqs if ledger.admit(NOTIFY, {"seq": s}, CHAT, room)]

    assert admitted(1, 2) == [1, 2]  # a room no socket here joined: not kept
    ledger.joined(room, 5)
    assert admitted(7, 5, 6, 7, 4, 8) == [7, 6, 8]  # two nodes' orders interleave
    assert ledger.floors([room]) == {"c": 8}
    ledger.forget(room)
    assert ledger.floors([room]) == {}


def test_the_ledger_keeps_the_chats_closed_here_before_their_terminate(monkeypatch):
    """A remote close of a room whose chat's ``terminate`` did not come first
    leaves the chat to the next catch-up, until it comes or a catch-up ends it;
    the oldest go past CHATS_KEPT."""
    monkeypatch.setattr(ledger, "CHATS_KEPT", 3)
    kept = DeliveryLedger()

    def terminate(chat_id: str) -> bool:
        data = {"id": chat_id, "by": "alice"}
        return kept.admit(TERMINATE, data, CONTROL, user_room("bob"))

    for chat_id in ("told", "untold", "late", "other"):
        kept.joined(chat_room(chat_id), 0)
    assert terminate("told")
    for chat_id in ("told", "untold", "late"):
        kept.closed_elsewhere(chat_room(chat_id))
    kept.closed_elsewhere(chat_room("never-joined-here"))
    assert list(kept.unterminated) == ["untold", "late"]
    assert terminate("late")  # it came after all
    assert list(kept.unterminated) == ["untold"]
    kept.end("untold")  # a catch-up ended it here: a late live copy is dropped
    assert list(kept.unterminated) == []
    assert not terminate("untold")
    for chat_id in ("a", "b", "c", "d"):
        kept.joined(chat_room(chat_id), 0)
        kept.closed_elsewhere(chat_room(chat_id))
    assert list(kept.unterminated) == ["b", "c", "d"]


def test_a_fault_whose_exception_chain_loops_is_reported_and_returns():
    """A Redis error whose ``__context__`` chain comes back on itself once
    spun the node's event loop for ever in the TLS check of
    ``RedisBus.fault``: the node served nothing more until killed (seen in
    ``test_catchup_control``, 1 run in 3: py-spy showed the loop in
    ``certificate_rejected``)."""
    first, second = ConnectionError("refused"), OSError("reset")
    first.__context__, second.__context__ = second, first
    answers: list[bool] = []
    checker = threading.Thread(
        target=lambda: answers.append(bus.certificate_rejected(first)), daemon=True
    )
    checker.start()
    checker.join(TIMEOUT)
    assert answers == [False], "certificate_rejected is still walking the chain"
