"""What one connection may do: its event allowance, and the connection caps."""

from __future__ import annotations

import time
from dataclasses import dataclass

# Remembered buckets and bars are pruned once there are this many, so a crowd
# of users coming and going cannot grow them without bound.
PRUNE_AT = 1024


@dataclass(frozen=True)
class Allowance:
    rate: float  # events per second, refilled continuously
    burst: int  # events that may be sent at once after a quiet spell
    connections_per_user: int = 20  # per namespace, on this node
    # Refused events in a row after which a connection counts as a flooder
    # and is disconnected: it kept sending after being told rate_limited.
    flood_strikes: int = 100
    # Seconds for which a user disconnected for flooding may not reconnect.
    flood_cooldown: float = 10.0


class TokenBucket:
    __slots__ = ("allowance", "stamp", "tokens")

    def __init__(self, allowance: Allowance) -> None:
        self.allowance = allowance
        self.tokens = float(allowance.burst)
        self.stamp = time.monotonic()

    def refill(self) -> None:
        now = time.monotonic()
        refill = (now - self.stamp) * self.allowance.rate
        self.tokens = min(self.allowance.burst, self.tokens + refill)
        self.stamp = now

    def take(self) -> bool:
        """Spend one token if there is one; False means over the allowance."""
        self.refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    @property
    def full(self) -> bool:
        self.refill()
        return self.tokens >= self.allowance.burst


class Allowances:
    """Hands out connections' buckets so that reconnecting earns nothing.

    Each connection has its own bucket, but a user's new connection resumes
    the bucket their last one left behind until it has refilled, instead of
    starting with a full burst; and a user disconnected for flooding is
    refused for ``flood_cooldown`` seconds. Without both, a client that
    reconnects after every drop got a fresh burst each time: eleven times its
    allowance in the flood bench.
    """

    def __init__(self, allowance: Allowance) -> None:
        self.allowance = allowance
        self.left_behind: dict[str, TokenBucket] = {}
        self.barred: dict[str, float] = {}  # user -> monotonic end of the bar

    def open(self, user: str) -> TokenBucket:
        """The bucket for a new connection of ``user``."""
        return self.left_behind.pop(user, None) or TokenBucket(self.allowance)

    def close(self, user: str, bucket: TokenBucket) -> None:
        """Keep a closed connection's bucket while it is still being refilled."""
        if bucket.full:
            return
        self.left_behind[user] = bucket
        if len(self.left_behind) >= PRUNE_AT:
            for name, kept in list(self.left_behind.items()):
                if kept.full:
                    del self.left_behind[name]

    def bar(self, user: str) -> None:
        """Refuse the user's connections for the flood cool-down."""
        now = time.monotonic()
        if len(self.barred) >= PRUNE_AT:
            self.barred = {n: end for n, end in self.barred.items() if end > now}
        self.barred[user] = now + self.allowance.flood_cooldown

    def barred_for(self, user: str) -> float:
        """Seconds until ``user`` may connect again (0 when they may now)."""
        end = self.barred.get(user)
        if end is None:
            return 0.0
        left = end - time.monotonic()
        if left <= 0:
            del self.barred[user]
            return 0.0
        return left
