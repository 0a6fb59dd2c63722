"""Which chats this process saw active in the database a moment ago."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# How long a chat seen active is taken to be active without asking the
# database again: the longest a node that missed a chat's end (Redis down or
# frozen when it ended) goes on answering ``typing`` on it with ok.
ACTIVE_TTL = 1.0
PRUNE_MIN = 1024


class ActiveChats:
    """Chat ids with the time the database last said each was active.

    ``typing`` stores nothing, so no statement of its own can refuse an ended
    chat; a socket's room says "joined", but a room is only closed everywhere
    if the bus carried the end. So ``typing`` trusts the room for ``ttl``
    seconds after the chat was last seen active (by a stored message, a join
    or a check of its own), and reads the database again after that: at most
    one read per chat per ``ttl`` on each node, none in a chat where messages
    are being stored. Only sightings of active chats are kept: an ended chat
    is read each time, which only a node that missed its end ever does.
    """

    def __init__(
        self, ttl: float = ACTIVE_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.seen_at: dict[str, float] = {}
        self.prune_at = PRUNE_MIN

    def __len__(self) -> int:
        return len(self.seen_at)

    def fresh(self, chat_id: str) -> bool:
        """Whether the chat was seen active within the last ``ttl`` seconds."""
        at = self.seen_at.get(chat_id)
        return at is not None and self.clock() - at < self.ttl

    def seen(self, chat_id: str, at: float) -> None:
        """The database said the chat was active at ``at`` (a ``clock()``
        reading taken before the read began) or later."""
        if at > self.seen_at.get(chat_id, -math.inf):
            self.seen_at[chat_id] = at
            if len(self.seen_at) >= self.prune_at:
                self.prune()

    def prune(self) -> None:
        """Drop the expired entries; the next prune waits for the table to
        double, so a busy table costs O(1) per entry."""
        expired = self.clock() - self.ttl
        self.seen_at = {c: at for c, at in self.seen_at.items() if at > expired}
        self.prune_at = max(PRUNE_MIN, 2 * len(self.seen_at))
