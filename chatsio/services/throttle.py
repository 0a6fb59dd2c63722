"""Throttles in front of password checks, per node, in bounded memory.

A ``Throttle`` keeps a count per key (a username, a client address) that drops
by one every ``forgive_every`` seconds, so it forgets on its own. Once the
count reaches the limit the key is refused until a deadline: for logins a
back-off that doubles with every further failure, for registrations until the
count has dropped below the limit again. A refusal costs no hash, and is
answered after a pause (``refuse``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address, ip_network
from typing import NoReturn

from chatsio.errors import RateLimited

# Keys one table remembers; past it, keys with nothing left to remember go
# first, then the least recently touched, down to nine tenths of it.
MAX_KEYS = 50_000
# A failure is forgotten a minute later, so a persistent guesser ends up at
# about one attempt per minute per username and per address.
FORGIVE_FAILURE_EVERY = 60.0
BACKOFF_START = 2.0
BACKOFF_MAX = 900.0
HOUR = 3600.0
# Password checks one client address may have running or queued at once, so
# that one address never fills the hash pool (services/passwords.py).
CHECKS_PER_ADDRESS = 4
CHECKS_BUSY_RETRY_AFTER = 1.0
REFUSAL_PAUSE = 1.0  # see refuse()


@dataclass(slots=True)
class Entry:
    count: int
    at: float  # where the current ``forgive_every`` period started
    until: float  # refused before this time


class Throttle:
    """Counts per key, worn down over time; refuses a key that used them up."""

    def __init__(
        self,
        limit: int,
        forgive_every: float,
        *,
        backoff: bool,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.forgive_every = forgive_every
        self.backoff = backoff
        self.max_keys = max_keys
        self.clock = clock
        self.entries: dict[str, Entry] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""
        entry = self.entries.get(key)
        return max(0.0, entry.until - self.clock()) if entry else 0.0

    def charge(self, key: str) -> None:
        """Count one attempt against ``key``, refusing the next ones if need be."""
        now = self.clock()
        entry = self._touch(key, now)
        entry.count += 1
        over = entry.count - self.limit
        if over < 0:
            return
        if self.backoff:
            until = now + min(BACKOFF_MAX, BACKOFF_START * 2**over)
        else:  # until the count is back under the limit
            until = entry.at + (over + 1) * self.forgive_every
        entry.until = max(entry.until, until)

    def refund(self, key: str) -> None:
        """Take back one attempt (one that succeeded or never ran)."""
        entry = self.entries.get(key)
        if entry is not None:
            entry.count = max(0, entry.count - 1)

    def clear(self, key: str) -> None:
        self.entries.pop(key, None)

    def _touch(self, key: str, now: float) -> Entry:
        entry = self.entries.pop(key, None)  # re-inserted: most recent last
        if entry is None:
            if len(self.entries) >= self.max_keys:
                self._prune(now)
            entry = Entry(0, now, 0.0)
        elif (periods := self._periods(entry, now)) > 0:
            entry.count = max(0, entry.count - periods)
            entry.at = (
                now if not entry.count else entry.at + periods * self.forgive_every
            )
        self.entries[key] = entry
        return entry

    def _prune(self, now: float) -> None:
        for key, entry in list(self.entries.items()):
            if entry.count <= self._periods(entry, now) and entry.until <= now:
                del self.entries[key]
        target = self.max_keys * 9 // 10
        while len(self.entries) > target:
            del self.entries[next(iter(self.entries))]

    def _periods(self, entry: Entry, now: float) -> int:
        """Whole ``forgive_every`` periods since ``entry.at``."""
        return int((now - entry.at) // self.forgive_every)


@dataclass(slots=True)
class Attempt:
    """One login or registration; the code holding it says how it went."""

    checked: bool = False  # the password was hashed or checked
    matched: bool = False  # ... and was right (a login)

    def done(self, matched: bool = False) -> None:
        self.checked, self.matched = True, matched


class Gatekeeper:
    """Failed logins per username and per client address, registrations per
    client address, and password checks in progress per client address.

    An attempt is charged before its password is checked, and refunded if it
    succeeds or is never checked, so that concurrent attempts cannot all pass
    before the first has failed. Unknown usernames count like known ones.
    """

    def __init__(
        self,
        *,
        failures_per_user: int,
        failures_per_address: int,
        registrations_per_hour: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = Throttle(
            failures_per_user, FORGIVE_FAILURE_EVERY, backoff=True, clock=clock
        )
        self.addresses = Throttle(
            failures_per_address, FORGIVE_FAILURE_EVERY, backoff=True, clock=clock
        )
        self.registrations = Throttle(
            registrations_per_hour,
            HOUR / registrations_per_hour,
            backoff=False,
            clock=clock,
        )
        # Address key -> password checks it has running or queued; no key
        # stays once its checks are done.
        self.checking: dict[str, int] = {}

    @asynccontextmanager
    async def login(self, username: str, address: str | None) -> AsyncIterator[Attempt]:
        """Admit one login attempt (or refuse it) for its duration."""
        key = client_key(address) if address is not None else None
        wait = self.users.retry_after(username)
        if key is not None:
            wait = max(wait, self.addresses.retry_after(key))
        if wait > 0:
            await refuse("too many failed logins; try again later", wait)
        await self._refuse_if_busy(key)
        with self._checking(key):
            self.users.charge(username)
            if key is not None:
                self.addresses.charge(key)
            attempt = Attempt()
            try:
                yield attempt
            finally:
                if attempt.matched:
                    self.users.clear(username)
                elif not attempt.checked:
                    self.users.refund(username)
                if key is not None and (attempt.matched or not attempt.checked):
                    self.addresses.refund(key)

    @asynccontextmanager
    async def registration(self, address: str | None) -> AsyncIterator[Attempt]:
        """Admit one registration (or refuse it) for its duration."""
        key = client_key(address) if address is not None else None
        if key is not None and (wait := self.registrations.retry_after(key)) > 0:
            await refuse(
                "too many registrations from your address; try again later", wait
            )
        await self._refuse_if_busy(key)
        with self._checking(key):
            if key is not None:
                self.registrations.charge(key)
            attempt = Attempt()
            try:
                yield attempt
            finally:
                if key is not None and not attempt.checked:
                    self.registrations.refund(key)

    async def _refuse_if_busy(self, key: str | None) -> None:
        if key is not None and self.checking.get(key, 0) >= CHECKS_PER_ADDRESS:
            await refuse(
                "too many password checks at once from your address",
                CHECKS_BUSY_RETRY_AFTER,
            )

    @contextmanager
    def _checking(self, key: str | None) -> Iterator[None]:
        """Hold one of the address's CHECKS_PER_ADDRESS places."""
        if key is None:
            yield
            return
        self.checking[key] = self.checking.get(key, 0) + 1
        try:
            yield
        finally:
            if self.checking[key] == 1:
                del self.checking[key]
            else:
                self.checking[key] -= 1


async def refuse(message: str, wait: float) -> NoReturn:
    """Raise RateLimited, after a pause of up to REFUSAL_PAUSE.

    A client that asks again at once, Retry-After or not, gets one answer per
    pause for each request it keeps open, instead of keeping the server busy
    answering it (thousands of refusals a second slowed everyone's requests).
    """
    pause = min(REFUSAL_PAUSE, wait)
    await asyncio.sleep(pause)
    raise RateLimited(message, retry_after=wait - pause)


def client_key(address: str) -> str:
    """The key of a client address: an IPv6 client is its /64, as one host
    usually holds the whole of it; an IPv4-mapped one is its IPv4 address."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)
