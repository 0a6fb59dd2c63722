"""Which sharded channels a node listens to: those of the rooms it hosts.

python-socketio's ``AsyncRedisManager`` has every node subscribe to one
channel and hear every event of the deployment. Here each room has a channel
of its own (``room_channel``), which a node subscribes to (SSUBSCRIBE) while
the room has members on it, so a node pays for the rooms it hosts only.

``RoomChannels`` is the bookkeeping, with no I/O: the bus sends what
``round`` returns on its pub/sub connection and reports Redis's answers.
A room that empties keeps its channel for ``linger`` seconds, so that a
reconnect does not unsubscribe and subscribe again; the channels to change are
gathered until the bus's next round, so one command carries many.
"""

from __future__ import annotations

import asyncio

UNSUBSCRIBE_AFTER = 5.0


def room_channel(channel: str, room: str) -> str:
    """The sharded channel of ``room`` in the deployment whose broadcast
    channel is ``channel`` (one per room name, whatever the namespace)."""
    return f"{channel}:room:{room}"


class RoomChannels:
    """The channels this node needs, and what Redis has confirmed of them on
    the current pub/sub connection."""

    def __init__(self, linger: float = UNSUBSCRIBE_AFTER) -> None:
        self.linger = linger
        self.wanted: set[str] = set()  # rooms with members here
        self.unsent: set[str] = set()  # wanted, no SSUBSCRIBE sent yet
        self.sent: set[str] = set()  # SSUBSCRIBE sent and not undone since
        self.idle: dict[str, float] = {}  # sent, no members since (in order)
        self.pending: dict[str, int] = {}  # commands sent, not answered yet
        self.confirmed: set[str] = set()  # sent, every command answered
        self.waiters: dict[str, asyncio.Future] = {}
        self.changed = asyncio.Event()

    def need(self, channel: str) -> asyncio.Future | None:
        """A room gained a member: None if Redis already delivers its channel
        here, else a future done once it does."""
        self.idle.pop(channel, None)
        self.wanted.add(channel)
        if channel in self.confirmed:
            return None
        if channel not in self.sent:
            self.unsent.add(channel)
            self.changed.set()
        waiter = self.waiters.get(channel)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters[channel] = waiter
        return waiter

    def release(self, channel: str, now: float) -> None:
        """The room has no member here any more."""
        if channel not in self.wanted:
            return
        self.wanted.discard(channel)
        if channel in self.sent:
            self.idle[channel] = now
            self.changed.set()  # the bus's next round wakes for its expiry
        else:
            self.unsent.discard(channel)
            self._wake(channel)

    def round(self, now: float) -> tuple[list[str], list[str]]:
        """The channels to subscribe and to unsubscribe now, marked sent."""
        subscribe = list(self.unsent)
        self.unsent.clear()
        self.sent.update(subscribe)
        unsubscribe = []
        for channel, since in self.idle.items():
            if now - since < self.linger:
                break  # the rest emptied later
            unsubscribe.append(channel)
        for channel in unsubscribe:
            del self.idle[channel]
            self.sent.discard(channel)
            self.confirmed.discard(channel)
        for channel in subscribe + unsubscribe:
            self.pending[channel] = self.pending.get(channel, 0) + 1
        return subscribe, unsubscribe

    def next_expiry(self, now: float) -> float | None:
        """Seconds until the first idle channel is due, None if none is."""
        for since in self.idle.values():
            return max(0.0, since + self.linger - now)
        return None

    def answered(self, channel: str) -> None:
        """Redis answered one SSUBSCRIBE or SUNSUBSCRIBE of ``channel``: once
        all are, a channel last subscribed is delivered here."""
        left = self.pending.get(channel, 0) - 1
        if left > 0:
            self.pending[channel] = left
            return
        self.pending.pop(channel, None)
        if channel in self.sent:
            self.confirmed.add(channel)
            self._wake(channel)

    def lost(self) -> None:
        """The pub/sub connection is gone, and every subscription with it:
        the next one subscribes every wanted channel again. Waiting joins go
        on (a catch-up follows the reconnection)."""
        self.unsent = set(self.wanted)
        self.sent.clear()
        self.idle.clear()
        self.pending.clear()
        self.confirmed.clear()
        for channel in list(self.waiters):
            self._wake(channel)

    def _wake(self, channel: str) -> None:
        waiter = self.waiters.pop(channel, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
