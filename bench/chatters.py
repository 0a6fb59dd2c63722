"""Clients that chat, for the soak and the flood runs.

Each client connects ``/control`` and ``/chat`` over WebSocket, joins its chat's
room and records every ``notify`` it is sent, keyed by ``(chat id, seq)``. A
worker process sends messages for its clients on a fixed schedule, round-robin;
the text carries the send time, so a receiver knows the delivery latency (every
worker reads the same CLOCK_MONOTONIC). After the run the bench process checks
that each message acked ok reached every other member of the room exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import socketio
from common import NAMESPACES

ACK_TIMEOUT = 10.0
CONNECT_TIMEOUT = 15.0
MAX_IN_FLIGHT = 2000  # sends awaiting their ack, per worker; more are skipped
MARK = "bench"
FILLER = "the quick brown fox jumps over the lazy dog " * 2  # ~90 characters


class Member(NamedTuple):
    name: str
    token: str
    chat_id: str


class Chatter:
    """One device: a ``socketio.AsyncClient`` in one chat's room."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.received: Counter[tuple[str, int]] = Counter()
        self.latencies: list[tuple[float, float]] = []  # (sent at, latency)
        self.dropped: list[str] = []  # disconnects we did not ask for
        self.closing = False
        self.sio.on("notify", self.on_notify, namespace="/chat")
        self.sio.on("disconnect", self.on_disconnect, namespace="/chat")

    def on_notify(self, message: dict) -> None:
        now = time.monotonic()
        self.received[(message["id"], message["seq"])] += 1
        parts = str(message.get("text", "")).split("|", 4)
        if len(parts) == 5 and parts[0] == MARK:
            sent = float(parts[3])
            self.latencies.append((sent, now - sent))

    def on_disconnect(self, *reason: object) -> None:
        if not self.closing:
            self.dropped.append(f"{time.monotonic():.3f} {reason}")

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url,
            auth={"token": self.member.token},
            namespaces=list(NAMESPACES),
            transports=["websocket"],
            wait_timeout=CONNECT_TIMEOUT,
        )
        reply = await self.sio.call(
            "join", {"id": self.member.chat_id}, namespace="/chat", timeout=ACK_TIMEOUT
        )
        if not reply.get("ok"):
            raise RuntimeError(f"join: {reply}")

    async def close(self) -> None:
        self.closing = True
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.sio.disconnect()
        except Exception:  # a client that cannot say goodbye is dropped
            pass


class Chatters:
    """A worker process's clients (see fleet.py for the command loop)."""

    def __init__(self, index: int, count: int) -> None:
        self.index = index
        self.count = count
        self.clients: list[Chatter] = []
        self.acked: list[tuple[str, int, str, float, float]] = []
        self.failures: Counter[str] = Counter()
        self.skipped = 0

    async def do_connect(self, url: str, members: list, concurrency: int) -> dict:
        """Connect and join every member's client; who is in."""
        started = time.monotonic()
        limit = asyncio.Semaphore(concurrency)
        failed: list[str] = []

        async def one(member: Member) -> None:
            client = Chatter(Member(*member))
            async with limit:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT + ACK_TIMEOUT):
                        await client.connect(url)
                except Exception as exc:
                    failed.append(f"{client.member.name}: {exc!r}")
                    await client.close()
                    return
            self.clients.append(client)

        await asyncio.gather(*(one(member) for member in members))
        return {
            "connected": [client.member.name for client in self.clients],
            "failed": failed,
            "seconds": time.monotonic() - started,
        }

    async def do_chat(self, start_at: float, until: float, rate: float) -> dict:
        """Send ``rate`` messages a second, round-robin over the clients."""
        cpu, wall = time.process_time(), time.monotonic()
        order = list(self.clients)
        random.Random(self.index).shuffle(order)
        interval = 1 / rate
        at = start_at + interval * self.index / self.count  # workers interleave
        tasks: set[asyncio.Task] = set()
        attempted = 0
        while at < until and order:
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= MAX_IN_FLIGHT:
                self.skipped += 1
            else:
                client = order[attempted % len(order)]
                task = asyncio.create_task(self.send(client, attempted))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            attempted += 1
            at += interval
        if tasks:
            await asyncio.wait(tasks, timeout=ACK_TIMEOUT + 5)
        return {
            "attempted": attempted,
            "acked": len(self.acked),
            "failures": dict(self.failures),
            "skipped": self.skipped,
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.monotonic() - wall,
        }

    async def send(self, client: Chatter, number: int) -> None:
        sent = time.monotonic()
        text = f"{MARK}|{client.member.name}|{number}|{sent:.6f}|{FILLER}"
        payload = {
            "id": client.member.chat_id,
            "kind": "message",
            "text": text,
            "client_id": f"w{self.index}n{number}",
        }
        try:
            reply = await client.sio.call(
                "notify", payload, namespace="/chat", timeout=ACK_TIMEOUT
            )
        except socketio.exceptions.TimeoutError:
            self.failures["ack timeout"] += 1
            return
        except socketio.exceptions.SocketIOError as exc:
            self.failures[type(exc).__name__] += 1
            return
        if reply.get("ok"):
            message = reply["message"]
            self.acked.append(
                (
                    message["id"],
                    message["seq"],
                    client.member.name,
                    sent,
                    time.monotonic(),
                )
            )
        else:
            self.failures[reply["error"]["code"]] += 1

    async def do_collect(self) -> dict:
        """Everything recorded: acks, receipts, latencies, dropped connections."""
        return {
            "acked": self.acked,
            "received": {c.member.name: dict(c.received) for c in self.clients},
            "latencies": [pair for c in self.clients for pair in c.latencies],
            "dropped": {c.member.name: c.dropped for c in self.clients if c.dropped},
            "failures": dict(self.failures),
            "skipped": self.skipped,
        }

    async def do_disconnect(self, concurrency: int = 50) -> dict:
        started = time.monotonic()
        limit = asyncio.Semaphore(concurrency)

        async def one(client: Chatter) -> None:
            async with limit:
                await client.close()

        await asyncio.gather(*(one(client) for client in self.clients))
        self.clients = []
        return {"seconds": time.monotonic() - started}

    async def close(self) -> None:
        await self.do_disconnect()


@dataclass
class Delivery:
    """Which acked messages reached which room members, and how often."""

    acked: int = 0
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    strays: int = 0  # received, but never acked ok (an ack that timed out)
    seq_gaps: int = 0
    lost_examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"acked {self.acked} messages; deliveries expected {self.expected}, "
            f"delivered {self.delivered}, lost {self.lost}, duplicates "
            f"{self.duplicates}, received-but-unacked {self.strays}, "
            f"seq gaps {self.seq_gaps}"
        )


def account(rooms: dict[str, list[str]], collected: list[dict]) -> Delivery:
    """Check every acked message against every other member's receipts.

    ``rooms`` maps a chat id to the members whose clients were in its room.
    """
    result = Delivery()
    senders: dict[tuple[str, int], str] = {}
    received: dict[str, dict] = {}
    for part in collected:
        for chat_id, seq, sender, _, _ in part["acked"]:
            senders[(chat_id, seq)] = sender
        received.update(part["received"])
    result.acked = len(senders)
    for (chat_id, seq), sender in senders.items():
        for member in rooms.get(chat_id, []):
            if member == sender:
                continue
            times = received.get(member, {}).get((chat_id, seq), 0)
            result.expected += 1
            if times == 0:
                result.lost += 1
                if len(result.lost_examples) < 10:
                    result.lost_examples.append(f"{member} missed {chat_id}#{seq}")
            else:
                result.delivered += 1
                result.duplicates += times - 1
    for receipts in received.values():
        result.strays += sum(1 for key in receipts if key not in senders)
    by_chat: dict[str, list[int]] = {}
    for chat_id, seq in senders:
        by_chat.setdefault(chat_id, []).append(seq)
    for seqs in by_chat.values():
        seqs.sort()
        result.seq_gaps += seqs[-1] - seqs[0] + 1 - len(seqs)
    return result
