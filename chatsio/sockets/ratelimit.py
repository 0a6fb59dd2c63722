"""What one connection may do: its event allowance, and the connection caps."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Allowance:
    rate: float  # events per second, refilled continuously
    burst: int  # events that may be sent at once after a quiet spell
    connections_per_user: int = 20  # per namespace, on this node
    # Refused events in a row after which a connection counts as a flooder
    # and is disconnected: it kept sending after being told rate_limited.
    flood_strikes: int = 100


class TokenBucket:
    __slots__ = ("allowance", "stamp", "tokens")

    def __init__(self, allowance: Allowance) -> None:
        self.allowance = allowance
        self.tokens = float(allowance.burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; False means over the allowance."""
        now = time.monotonic()
        refill = (now - self.stamp) * self.allowance.rate
        self.tokens = min(self.allowance.burst, self.tokens + refill)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
