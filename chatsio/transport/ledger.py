"""What this node has delivered of each chat, so that nothing goes out twice.

A chat's messages reach a node live (its own emits, other nodes' through the
bus) and, after the bus recovers from an outage, from the database
(``catchup``). Both pass ``admit``: a ``notify`` carrying a ``seq`` goes to a
chat room only once. Live copies of one chat may arrive out of order (two
nodes publish independently), so the ledger keeps every seq delivered rather
than only the highest: all up to ``done``, and the few delivered above it.

A chat's end crosses as several messages (``terminate`` to each member's
``/control`` channel, then the room's close), which on a Redis Cluster may sit
on different masters: while one is out, the room's close may arrive here and
a ``terminate`` not. Once the room is closed no floor is left for the
catch-up to read, so the ledger keeps such chats (``unterminated``) until a
catch-up ends them here or their ``terminate`` comes after all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatsio.protocol import CHAT, NOTIFY, TERMINATE

# Seqs kept above a hole before the hole is given up on: a message stored but
# never emitted (its node died between the commit and the emit) must not make
# the set grow for ever; a recovery fills holes long before this.
ABOVE_MAX = 1024
ROOM_PREFIX = "chat:"  # protocol.chat_room's
# Chats kept in ``ended`` and ``unterminated``, the oldest forgotten first:
# each matters only for the seconds a late copy takes, or until the catch-up
# that follows the outage.
CHATS_KEPT = 10_000


@dataclass(slots=True)
class Delivered:
    done: int  # every seq up to this one is delivered (or the members have it)
    above: set[int] = field(default_factory=set)
    terminated: bool = False  # a ``terminate`` of the chat was delivered here

    def add(self, seq: int) -> bool:
        """Record ``seq``; False when it was delivered already."""
        if seq <= self.done or seq in self.above:
            return False
        self.above.add(seq)
        if len(self.above) > ABOVE_MAX:
            self.done = min(self.above) - 1
        while self.done + 1 in self.above:
            self.done += 1
            self.above.discard(self.done)
        return True


class DeliveryLedger:
    """Per chat room of this node: the seqs delivered here."""

    def __init__(self) -> None:
        self.rooms: dict[str, Delivered] = {}
        # Chat ids, in order (a dict's keys): those a recovery ended here, and
        # those whose room a remote close emptied before any ``terminate``.
        self.ended: dict[str, None] = {}
        self.unterminated: dict[str, None] = {}

    def admit(self, event: str, data, namespace: str, room) -> bool:
        """Whether an emit should go to this node's sockets (and note it)."""
        if namespace == CHAT and event == NOTIFY and isinstance(data, dict):
            seq = data.get("seq")
            if type(seq) is int and isinstance(room, str):
                # A room no join here noted has no socket here to hear it.
                delivered = self.rooms.get(room)
                return delivered is None or delivered.add(seq)
        if event == TERMINATE and isinstance(data, dict):
            return self._terminating(data.get("id"))
        return True

    def _terminating(self, chat_id) -> bool:
        """A ``terminate`` of ``chat_id`` is to go out: whether it should."""
        if not isinstance(chat_id, str):
            return True
        if chat_id in self.ended:
            return False
        delivered = self.rooms.get(f"{ROOM_PREFIX}{chat_id}")
        if delivered is not None:
            delivered.terminated = True
        self.unterminated.pop(chat_id, None)
        return True

    def joined(self, room: str, seq: int) -> None:
        """A socket entered ``room`` holding every message up to ``seq``: the
        room's floor, unless sockets already here hold less."""
        self.rooms.setdefault(room, Delivered(seq))

    def forget(self, room: str) -> None:
        """``room`` has no socket here any more."""
        self.rooms.pop(room, None)

    def closed_elsewhere(self, room: str) -> None:
        """Another node closed ``room`` (its chat ended): no socket here is in
        it any more, and without a ``terminate`` delivered here first the
        next catch-up has to end the chat here."""
        delivered = self.rooms.pop(room, None)
        if delivered is not None and not delivered.terminated:
            keep(self.unterminated, room.removeprefix(ROOM_PREFIX))

    def floors(self, rooms) -> dict[str, int]:
        """Chat id to the seq up to which each of ``rooms`` has everything."""
        return {
            room.removeprefix(ROOM_PREFIX): self.rooms[room].done
            for room in rooms
            if room in self.rooms
        }

    def end(self, chat_id: str) -> None:
        """A recovery ended the chat here: a late live ``terminate`` is dropped."""
        self.unterminated.pop(chat_id, None)
        keep(self.ended, chat_id)


def keep(chats: dict[str, None], chat_id: str) -> None:
    """Add ``chat_id`` to ``chats``, dropping the oldest past CHATS_KEPT."""
    chats[chat_id] = None
    if len(chats) > CHATS_KEPT:
        del chats[next(iter(chats))]
