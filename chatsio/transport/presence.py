"""Presence across nodes: ``RedisDirectory``, the ``PresenceDirectory`` of a
deployment with ``REDIS_URL`` (issue 20; the tracker and the rules are in
``services/presence.py``).

Keys, under ``<channel>:presence:`` (the deployment's channel, as its room
channels are, so deployments sharing a Redis keep apart):

- ``u:<user>``: a hash, node id -> when that node registered (ms). Arrive and
  depart are each one Lua script on this one key (HSET or HDEL, and HLEN), so
  they are atomic (of nodes arriving at once, one sees no node before it) and
  a Redis Cluster runs them on the key's master.
- ``node:<id>``: the node's liveness, refreshed every EVERY s, expiring after
  TTL s; ``users:<id>``: the users the node registered; ``nodes``: every
  registered node id.

Every EVERY s each node refreshes its liveness and looks for registered nodes
whose liveness expired: one node claims each (``sweep:<id>``, SET NX with a
TTL), removes it from its users' hashes, calls ``gone`` for each user it left
on no node, and deletes its set and registry entry. A SIGKILLed node's users
are offline within TTL + EVERY (20 s), inside the protocol's 30 s.

A node whose own liveness was gone at a heartbeat (Redis came back empty, or
the node froze past its TTL and was swept) registers under a new id and calls
``lost``, whose caller arrives its users again; the old id goes back into the
registry, so that whatever is left of it is swept, silently for the users
arrived again. A node sweeps nobody on that heartbeat nor on its first after
Redis failed, so that the others have a heartbeat to register again first.

Every call is bounded by CALL_TIMEOUT: a down or frozen Redis fails it within
about a second, and the caller (``PresenceTracker``) tries again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

from chatsio.protocol import now_ms
from chatsio.transport.bus import close_quietly
from chatsio.transport.redis_clients import CLIENT_OPTIONS, RedisTarget

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0
LIVENESS_TTL = 15.0
RETRY_EVERY = 1.0  # heartbeats while Redis fails
CALL_TIMEOUT = 1.0
# The client's pool refuses more connections than this: calls queue instead.
CONNECTIONS = CLIENT_OPTIONS["max_connections"]

# KEYS[1] the user's hash, ARGV node id and its start: the nodes before.
ARRIVE = """
local before = redis.call('HLEN', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return before
"""
# KEYS[1] the user's hash, ARGV[1] the node id: the nodes left.
DEPART = """
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('HLEN', KEYS[1])
"""
# As DEPART, but -1 when the node was not there (swept already).
SWEEP = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
return redis.call('HLEN', KEYS[1])
"""

Gone = Callable[[str, int], Awaitable[None]]
Lost = Callable[[], Awaitable[None]]


class RedisDirectory:
    """Which nodes each user is on, in the Redis of ``target``."""

    keeps_users = True  # until the registration expires and a node sweeps it

    def __init__(
        self,
        target: RedisTarget,
        channel: str,
        *,
        every: float = HEARTBEAT_EVERY,
        ttl: float = LIVENESS_TTL,
    ) -> None:
        self.target = target
        self.prefix = f"{channel}:presence:"
        self.every = every
        self.ttl_ms = int(ttl * 1000)
        self.retry_every = min(every, RETRY_EVERY)
        self.node_id = uuid.uuid4().hex
        self.since = now_ms()
        self.registered = False
        self.failing: str | None = None
        self.client = None
        self.calls = asyncio.Semaphore(CONNECTIONS)
        self.gone: Gone | None = None
        self.lost: Lost | None = None
        self.heartbeat: asyncio.Task | None = None

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- the directory --------------------------------------------------------

    async def arrive(self, user: str) -> bool:
        """Register this node for ``user``; True if they had no node before."""
        async with self._redis() as client:
            if not self.registered:
                await self._register(client)
            # The set first: a node's users are all swept once it dies.
            await client.sadd(self._key("users", self.node_id), user)
            before = await client.eval(
                ARRIVE, 1, self._key("u", user), self.node_id, self.since
            )
        return before == 0

    async def depart(self, user: str) -> bool:
        """Unregister this node for ``user``; True if no node is left (also
        when this one was gone already: Redis may have lost it)."""
        async with self._redis() as client:
            left = await client.eval(DEPART, 1, self._key("u", user), self.node_id)
            await client.srem(self._key("users", self.node_id), user)
        return left == 0

    async def online(self, users: Collection[str]) -> set[str]:
        """Those of ``users`` on some node."""
        names = list(users)
        if not names:
            return set()
        async with self._redis() as client:
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.exists(self._key("u", name))
            found = await pipe.execute()
        return {name for name, count in zip(names, found, strict=True) if count}

    async def start(self, gone: Gone, lost: Lost) -> None:
        """Heartbeat and sweep from now on; returns at once, Redis or not."""
        self.gone, self.lost = gone, lost
        self.heartbeat = asyncio.create_task(self._keep_alive())

    async def aclose(self) -> None:
        """Stop heartbeating. The registration is left to expire: a node
        restarting or stopping behind a balancer has its users reconnect to
        another node before it is swept, so nobody sees them leave."""
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            await asyncio.gather(self.heartbeat, return_exceptions=True)
        await self._reset_client()

    # -- Redis ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _redis(self) -> AsyncIterator:
        """The client, for CALL_TIMEOUT at most; replaced if a call fails.

        A cancel that arrives with Redis's reply is lost inside redis-py (its
        ``asyncio.wait_for``, on Python 3.11): it is raised here again, or a
        cancelled task would go on as if it had not been."""
        task = asyncio.current_task()
        cancels = task.cancelling()
        try:
            async with asyncio.timeout(CALL_TIMEOUT), self.calls:
                if self.client is None:
                    self.client = self.target.client()
                yield self.client
        except Exception:
            await self._reset_client()
            raise
        if task.cancelling() > cancels:
            raise asyncio.CancelledError

    async def _reset_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await close_quietly(client)

    async def _register(self, client) -> None:
        await client.set(self._key("node", self.node_id), self.since, px=self.ttl_ms)
        await client.sadd(self._key("nodes"), self.node_id)
        self.registered = True

    # -- heartbeat and sweep --------------------------------------------------

    async def _keep_alive(self) -> None:
        while True:
            steady = self.failing is None
            try:
                lost = await self._beat()
                if not lost and steady:
                    await self._sweep()
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(self.retry_every)
                continue
            self._recovered()
            if lost:
                await self._tell(self.lost)
            await asyncio.sleep(self.every)

    async def _beat(self) -> bool:
        """Refresh this node's liveness; True if it had vanished, and the node
        registered anew under another id."""
        async with self._redis() as client:
            if not self.registered:
                await self._register(client)
                return False
            liveness = self._key("node", self.node_id)
            if await client.set(liveness, self.since, px=self.ttl_ms, xx=True):
                return False
            await client.sadd(self._key("nodes"), self.node_id)  # swept later
            self.registered = False
            self.node_id, self.since = uuid.uuid4().hex, now_ms()
            await self._register(client)
        logger.warning("presence: this node's registration vanished; registered anew")
        return True

    async def _sweep(self) -> None:
        """Depart the users of every registered node whose liveness expired."""
        async with self._redis() as client:
            registered = await client.smembers(self._key("nodes"))
        for node_id in {member.decode() for member in registered} - {self.node_id}:
            users = await self._claim(node_id)
            if users is not None:
                await self._sweep_node(node_id, users)

    async def _claim(self, node_id: str) -> list[str] | None:
        """The users of ``node_id`` if it is dead and this node is to sweep it."""
        async with self._redis() as client:
            if await client.exists(self._key("node", node_id)):
                return None
            claim = self._key("sweep", node_id)
            if not await client.set(claim, self.node_id, px=2 * self.ttl_ms, nx=True):
                return None  # another node sweeps it
            users = await client.smembers(self._key("users", node_id))
        return [user.decode() for user in users]

    async def _sweep_node(self, node_id: str, users: list[str]) -> None:
        swept_at = now_ms()
        for user in users:
            async with self._redis() as client:
                left = await client.eval(SWEEP, 1, self._key("u", user), node_id)
            if left == 0:
                await self._tell(self.gone, user, swept_at)
        async with self._redis() as client:
            await client.delete(self._key("users", node_id))
            await client.srem(self._key("nodes"), node_id)
        logger.info("presence: swept %d users of a silent node", len(users))

    async def _tell(self, callback, *args) -> None:
        try:
            await callback(*args)
        except Exception:
            logger.exception("presence: a directory callback failed")

    def _failed(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        if self.failing is None:
            logger.error("presence: redis failing (%s); retrying", text)
        self.failing = text

    def _recovered(self) -> None:
        if self.failing is not None:
            self.failing = None
            logger.warning("presence: redis working again")
