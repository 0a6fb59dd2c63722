"""Each user's message allowance on this node."""

from __future__ import annotations

import time

from chatsio.errors import RateLimited
from chatsio.services.buckets import Buckets, Rate


class MessageAllowance:
    """One allowance per user for the messages they post, REST and sockets alike.

    Each socket also spends its own event allowance, so a socket alone is
    limited as before; this one, with the same rate and burst, is what keeps
    a user's sockets and REST posts together to one socket's worth of
    messages, where REST had no limit at all (one token stored over 1,000
    messages/s).
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.buckets = Buckets(Rate(rate, burst))

    def spend(self, user: str) -> None:
        """Take one message from ``user``'s allowance, or raise RateLimited."""
        now = time.monotonic()
        wait = self.buckets.wait(user, 1, now)
        if wait > 0:
            raise RateLimited(
                f"over the allowance of {self.buckets.rate.per_second:g} "
                "messages per second",
                retry_after=wait,
            )
        self.buckets.spend(user, 1, now)
