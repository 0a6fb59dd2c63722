"""Presence: who is online, told to the users who share an active chat.

Each node counts its own /control connections per user (``PresenceTracker``);
a ``PresenceDirectory`` holds which nodes each user is on, deployment-wide,
and says when a user's first node arrives (online) or last one departs
(offline). The tracker never waits on the directory while serving: changes
are queued and applied by a reconciler, retried while the directory fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from chatsio.protocol import CONTROL, PRESENCE, now_ms, user_room
from chatsio.schemas import presence_out
from chatsio.services.emitter import Emitter
from chatsio.storage import Storage

logger = logging.getLogger(__name__)

# A failing directory is tried again this often while changes are pending.
RETRY_EVERY = 2.0
# Changes applied at once: the directory and the database serve the rest.
SETTLING_AT_ONCE = 16
# How long a read waits for the directory before answering from this node.
ONLINE_TIMEOUT = 1.0
# How long a stopping node spends departing its users.
DEPART_WITHIN = 3.0

Changed = Callable[[str, bool, int | None], Awaitable[None]]


class PresenceDirectory(Protocol):
    """Which nodes each user is on, for the whole deployment.

    ``arrive``, ``depart`` and ``online`` raise when the directory cannot be
    reached; the tracker keeps the change and tries again.
    """

    # Whether this node's users stay registered after ``aclose`` until the
    # directory sweeps them (RedisDirectory: once the node's registration
    # expires). A stopping node then departs nobody, so that a user whose
    # client reconnects to another node meanwhile is never seen to leave.
    keeps_users: bool

    async def arrive(self, user: str) -> bool:
        """Register this node for ``user``; True if they had no node before."""

    async def depart(self, user: str) -> bool:
        """Unregister this node for ``user``; True if no node is left."""

    async def online(self, users: Collection[str]) -> set[str]:
        """Those of ``users`` on some node."""

    async def start(
        self,
        gone: Callable[[str, int], Awaitable[None]],
        lost: Callable[[], Awaitable[None]],
    ) -> None:
        """Begin: ``gone(user, last_seen)`` when a dead node's last user is
        swept away, ``lost()`` when this node's registrations vanished."""

    async def aclose(self) -> None: ...


class LocalDirectory:
    """The directory of a deployment of one process (no ``REDIS_URL``)."""

    keeps_users = False  # the deployment stops with this process

    def __init__(self) -> None:
        self.users: set[str] = set()

    async def arrive(self, user: str) -> bool:
        new = user not in self.users
        self.users.add(user)
        return new

    async def depart(self, user: str) -> bool:
        present = user in self.users
        self.users.discard(user)
        return present

    async def online(self, users: Collection[str]) -> set[str]:
        return self.users.intersection(users)

    async def start(
        self,
        gone: Callable[[str, int], Awaitable[None]],
        lost: Callable[[], Awaitable[None]],
    ) -> None:
        """Nothing to watch: this process is every node there is."""

    async def aclose(self) -> None:
        """Nothing to close."""


class PresenceTracker:
    """This node's users, and the reconciler that tells the directory.

    A user is *here* from their first /control connection until ``grace``
    seconds after their last one closed with none opened meanwhile. The
    directory is brought in line with who is here one round at a time; a
    user whose arrive or depart made them go online or offline is passed to
    ``changed(user, online, last_seen)``, last_seen being when their last
    connection here closed.
    """

    def __init__(
        self,
        directory: PresenceDirectory,
        changed: Changed,
        *,
        grace: float,
        retry_every: float = RETRY_EVERY,
    ) -> None:
        self.directory = directory
        self.changed = changed
        self.grace = grace
        self.retry_every = retry_every
        self.connections: Counter[str] = Counter()
        self.here: set[str] = set()
        # Users whose last connection closed, in their grace: (timer, closed at).
        self.leaving: dict[str, tuple[asyncio.TimerHandle, int]] = {}
        # When users gone from here left, kept until their depart is made.
        self.closed_at: dict[str, int] = {}
        self.registered: set[str] = set()  # as the directory has them
        self.pending: set[str] = set()  # users to check against the directory
        self.settling = asyncio.Semaphore(SETTLING_AT_ONCE)
        self.wake = asyncio.Event()
        self.failure: Exception | None = None  # of this round
        self.failing = False  # since an earlier round
        self.task: asyncio.Task | None = None
        self.stopped = False

    def start(self) -> None:
        self.task = asyncio.create_task(self.reconcile_forever())

    def connected(self, user: str) -> None:
        """A /control connection of ``user`` opened on this node."""
        if self.stopped:
            return
        self.connections[user] += 1
        if self.connections[user] > 1:
            return
        leaving = self.leaving.pop(user, None)
        if leaving:  # back within the grace: no change
            leaving[0].cancel()
            return
        self.here.add(user)
        self.check(user)

    def disconnected(self, user: str) -> None:
        """A /control connection of ``user`` closed on this node."""
        if self.stopped:
            return
        self.connections[user] -= 1
        if self.connections[user]:
            return
        del self.connections[user]
        closed = now_ms()
        timer = asyncio.get_running_loop().call_later(
            self.grace, self.left, user, closed
        )
        self.leaving[user] = (timer, closed)

    def left(self, user: str, closed: int) -> None:
        """The grace ran out: ``user`` is gone from here since ``closed``."""
        del self.leaving[user]
        self.here.discard(user)
        self.closed_at[user] = closed
        self.check(user)

    async def lost(self) -> None:
        """The directory lost this node's entries: arrive every user again."""
        self.registered -= self.here
        self.check(*self.here)

    async def online(self, users: Collection[str]) -> set[str]:
        """Those of ``users`` online: the directory's answer, or this node's
        own while the directory fails (the reconciler logs that) or when it
        does not answer in time."""
        if not self.failing:
            try:
                async with asyncio.timeout(ONLINE_TIMEOUT):
                    return await self.directory.online(users)
            except Exception as exc:
                logger.debug("presence directory unavailable: %r", exc)
        return self.here.intersection(users)

    def check(self, *users: str) -> None:
        self.pending.update(users)
        self.wake.set()

    async def reconcile_forever(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if not await self.reconcile():
                self.wake.set()
                await asyncio.sleep(self.retry_every)

    async def reconcile(self) -> bool:
        """One round over the pending users; False if the directory failed
        (those not settled stay pending)."""
        users, self.pending = list(self.pending), set()
        self.failure = None
        settled = await asyncio.gather(*(self.settle(user) for user in users))
        self.pending.update(
            u for u, done in zip(users, settled, strict=True) if not done
        )
        if self.failure and not self.failing:
            logger.warning("presence directory unavailable: %r", self.failure)
        elif self.failing and not self.failure:
            logger.warning("presence directory available again")
        self.failing = self.failure is not None
        return not self.failing

    async def settle(self, user: str) -> bool:
        """Tell the directory whether ``user`` is here, if it does not know."""
        async with self.settling:
            arriving = user in self.here
            if arriving == (user in self.registered):
                return True
            if self.failure:  # not worth trying again until the next round
                return False
            try:
                if arriving:
                    went = await self.directory.arrive(user)
                else:
                    went = await self.directory.depart(user)
            except Exception as exc:
                self.failure = exc
                return False
            if arriving:
                self.registered.add(user)
            else:
                self.registered.discard(user)
            last_seen = None if arriving else self.closed_at.pop(user, now_ms())
            if went:
                await self.tell(user, arriving, last_seen)
        return True

    async def tell(self, user: str, online: bool, last_seen: int | None) -> None:
        try:
            await self.changed(user, online, last_seen)
        except Exception:
            logger.exception("announcing the presence of %s failed", user)

    async def aclose(self, within: float = DEPART_WITHIN) -> None:
        """Stop: depart every user of this node, for at most ``within`` s,
        unless the directory keeps them for its sweep."""
        self.stopped = True
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        now = now_ms()
        for user in self.here:
            leaving = self.leaving.pop(user, None)
            if leaving:
                leaving[0].cancel()
            self.closed_at[user] = leaving[1] if leaving else now
        self.here.clear()
        if self.directory.keeps_users:
            return
        self.pending.update(self.registered)
        try:
            async with asyncio.timeout(within):
                await self.reconcile()
        except TimeoutError:
            logger.warning("presence: stopped before departing every user")


@dataclass(frozen=True, slots=True)
class Presence:
    user: str
    online: bool
    last_seen: int | None  # ms; None while online or if never seen


class PresenceService:
    """Presence as users see it: changes announced, and who a viewer may see."""

    def __init__(
        self,
        storage: Storage,
        emitter: Emitter,
        directory: PresenceDirectory,
        *,
        grace: float,
    ) -> None:
        self.users = storage.users
        self.emitter = emitter
        self.directory = directory
        self.tracker = PresenceTracker(directory, self.announce, grace=grace)

    async def start(self) -> None:
        await self.directory.start(self.gone, self.tracker.lost)
        self.tracker.start()

    def connected(self, user: str) -> None:
        self.tracker.connected(user)

    def disconnected(self, user: str) -> None:
        self.tracker.disconnected(user)

    async def announce(self, user: str, online: bool, last_seen: int | None) -> None:
        """Store the change, then send one ``presence`` to the users sharing
        an active chat with ``user``.

        Only going offline is written: the stored ``last_seen`` is when the
        user last left, shown only while the directory has them on no node,
        so a connect (1,000 users at once, say) writes nothing."""
        if online:
            last_seen = None
        else:
            await self.users.set_last_seen(user, last_seen)
        watchers = await self.users.co_members(user)
        if watchers:
            await self.emitter.emit(
                PRESENCE,
                presence_out.dump(Presence(user, online, last_seen)),
                namespace=CONTROL,
                room=[user_room(name) for name in watchers],
            )

    async def gone(self, user: str, last_seen: int) -> None:
        """A dead node's last connection of ``user`` was swept away."""
        await self.announce(user, False, last_seen)

    async def visible(
        self, viewer: str, users: Collection[str] | None = None
    ) -> list[Presence]:
        """The presence of the users sharing an active chat with ``viewer``
        (of ``users`` only, if given), by name."""
        seen = await self.users.co_members(viewer, among=users)
        if not seen:
            return []
        presence = await self.presence_of(seen)
        return [presence[name] for name in sorted(presence)]

    async def among(self, members: Collection[str]) -> dict[str, Presence]:
        """The presence of one new chat's ``members``, which they may all see
        of each other now that they share it: name -> Presence."""
        return await self.presence_of(await self.users.last_seen(members))

    async def presence_of(self, seen: dict[str, int | None]) -> dict[str, Presence]:
        """Presence from stored last_seen values and the directory."""
        online = await self.tracker.online(seen)
        return {
            name: Presence(name, name in online, None if name in online else last)
            for name, last in seen.items()
        }

    async def aclose(self) -> None:
        """Depart this node's users (it is stopping), then close the directory."""
        await self.tracker.aclose()
        await self.directory.aclose()
