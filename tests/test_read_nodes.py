"""Read marks across nodes: two real ``chatsio serve`` processes sharing
PostgreSQL and a private Redis (PROTOCOL.md, "Presence and read state";
issue 20, acceptance 1)."""

from __future__ import annotations

import asyncio
import signal
import time

import test_cluster
import test_faults
from cluster import device, register
from test_cluster import call_ok

from chatsio.protocol import CHAT, CONTROL

READ = "read"
# From Redis answering again to the mark reaching node b's sockets.
RECOVERY = 5.0
OUTAGE = 10.0

# A private Redis (thawed at the end), the two nodes on it, the peers closed
# at the end.
redis_server = test_faults.redis_server
nodes, peers = test_cluster.nodes, test_cluster.peers


class Split:
    """alice reading on node a (joined), her other device on node b (not
    joined), bob on node b (joined), and two messages of bob's to read."""

    async def open(self, nodes, peers) -> Split:
        a, b = nodes
        alice_token = await register(a, "alice")
        bob_token = await register(b, "bob")
        self.alice = await self.connect(peers, a, alice_token)
        self.alice_b = await self.connect(peers, b, alice_token)
        self.bob = await self.connect(peers, b, bob_token)
        ack = await call_ok(self.alice, CONTROL, "start", {"members": ["bob"]})
        self.chat_id = ack["chat"]["id"]
        await self.bob.next(CONTROL, "invite")
        for peer in (self.alice, self.bob):
            await call_ok(peer, CHAT, "join", {"id": self.chat_id})
        for text in ("one", "two"):
            await call_ok(
                self.bob,
                CHAT,
                "notify",
                {"id": self.chat_id, "kind": "message", "text": text},
            )
        return self

    @staticmethod
    async def connect(peers, node, token):
        peer = await device(node, token)
        peers.append(peer)
        return peer

    async def read(self, seq: int) -> None:
        ack = await call_ok(self.alice, CHAT, READ, {"id": self.chat_id, "seq": seq})
        assert ack["read_seq"] == seq

    def mark(self, seq: int) -> dict:
        return {"id": self.chat_id, "user": "alice", "seq": seq}

    async def heard_on_b(self, seq: int, within: float) -> None:
        """bob's joined socket and alice's other device got the mark."""
        async with asyncio.timeout(within):
            assert await self.bob.next(CHAT, READ) == self.mark(seq)
            assert await self.alice_b.next(CONTROL, READ) == self.mark(seq)


async def test_a_read_on_one_node_reaches_the_room_and_devices_on_another(nodes, peers):
    split = await Split().open(nodes, peers)
    await split.read(1)
    await split.heard_on_b(1, within=5.0)
    await split.read(2)
    await split.heard_on_b(2, within=5.0)
    assert split.alice.received(CHAT, READ) == []  # the socket that read


async def test_a_read_lost_to_a_redis_outage_reaches_the_other_node_after_it(
    nodes, peers, redis_server
):
    split = await Split().open(nodes, peers)
    await split.read(1)
    await split.heard_on_b(1, within=5.0)

    await redis_server.stop(signal.SIGKILL)
    await asyncio.sleep(0.5)  # the outage has begun: nodes publish into nothing
    await split.read(2)  # stored; its live event is lost
    await asyncio.sleep(OUTAGE - 0.5)
    assert split.bob.received(CHAT, READ) == []
    assert split.alice_b.received(CONTROL, READ) == []
    await redis_server.start()  # on the same port; no node restarts
    back = time.monotonic()
    await split.heard_on_b(2, within=RECOVERY)
    took = time.monotonic() - back
    assert took < RECOVERY, f"node b had the mark {took:.1f} s after redis came back"
