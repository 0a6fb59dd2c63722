"""Token buckets per user, in this process, in bounded memory."""

from __future__ import annotations

from dataclasses import dataclass

# Full buckets are forgotten (a full bucket is what a newcomer gets) once there
# are this many, and then whenever their number has doubled since: so memory
# holds only users who spent something lately, at amortized constant cost.
PRUNE_AT = 1024


@dataclass(frozen=True)
class Rate:
    per_second: float  # refilled continuously
    burst: int  # what may be spent at once after a quiet spell

    @classmethod
    def per_minute(cls, count: int) -> Rate:
        """``count`` a minute, a minute's worth of which may be spent at once."""
        return cls(count / 60, count)


class Buckets:
    """One bucket of ``rate`` per user; times are ``time.monotonic()`` seconds."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.held: dict[str, tuple[float, float]] = {}  # user -> (tokens, stamp)
        self.prune_at = PRUNE_AT

    def level(self, user: str, now: float) -> float:
        """The user's tokens at ``now``."""
        tokens, stamp = self.held.get(user, (self.rate.burst, now))
        refilled = tokens + (now - stamp) * self.rate.per_second
        return min(float(self.rate.burst), refilled)

    def wait(self, user: str, cost: int, now: float) -> float:
        """Seconds until the user can spend ``cost`` (0: now)."""
        missing = cost - self.level(user, now)
        return max(0.0, missing / self.rate.per_second)

    def spend(self, user: str, cost: int, now: float) -> None:
        """Take ``cost`` tokens; callers check ``wait`` first."""
        self.held[user] = (self.level(user, now) - cost, now)
        if len(self.held) >= self.prune_at:
            full = float(self.rate.burst)
            self.held = {
                name: held
                for name, held in self.held.items()
                if self.level(name, now) < full
            }
            self.prune_at = max(PRUNE_AT, 2 * len(self.held))
