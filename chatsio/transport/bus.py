"""Cross-node fan-out over Redis that degrades instead of stalling.

python-socketio's ``AsyncRedisManager`` publishes in the emitting task (an ack
waits on Redis, up to 10 s when Redis hangs), retries its subscription with a
backoff that grows to 60 s, logs every failed emit, and grows its connection
pool under a hung Redis. ``RedisBus`` keeps the manager's room logic and wire
format and replaces the two Redis paths:

- publishing: emits go into a bounded in-process queue that one task drains in
  order, pipelined, each batch bounded by PUBLISH_TIMEOUT. An ack never waits on
  Redis. While Redis is down batches are dropped (the database has every
  message; clients recover them with ``join`` + ``since``).
- listening: one pub/sub connection, pinged every PING_EVERY; silence for
  SILENCE_LIMIT counts as down. Resubscription is retried every RETRY_EVERY,
  and a watchdog restarts the listener task if it ever ends.

The channel is named by CHATSIO_REDIS_CHANNEL, by default from the database
number in the URL (``default_channel``): Redis pub/sub ignores that number, so
deployments sharing one Redis would otherwise hear each other.

Each failure is logged once when it starts and once when it clears; ``probe``
tells the health check. A ``rediss://`` server whose certificate fails
verification is one line for both paths, naming the setting that accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from urllib.parse import urlparse

import socketio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import RedisError
from socketio.redis_manager import parse_redis_sentinel_url

from chatsio.config import SETTINGS_BY_FIELD
from chatsio.transport.fanout import DirectFanout

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 1.0
PING_EVERY = 1.0
SILENCE_LIMIT = 3.0
RETRY_EVERY = 0.5
WATCH_EVERY = 1.0
CLOSE_TIMEOUT = 1.0
OUTBOX_MAX = 10_000
BATCH_MAX = 256
TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
CLIENT_OPTIONS = {
    **TIMEOUTS,
    "retry": Retry(NoBackoff(), 0),  # the loops below do the retrying
    "max_connections": 4,  # publisher, probe, one spare; pub/sub has its own
}
TLS_VERIFY_SETTING = SETTINGS_BY_FIELD["redis_tls_verify"].env
# The channel on database 0, and the Sentinel service's name when the URL has
# none (python-socketio's fallback was the channel, always this name).
BASE_NAME = "chatsio"


class RedisUnavailable(ConnectionError):
    """Redis is not serving this node's publish or subscribe path."""


class RedisBus(socketio.AsyncRedisManager, DirectFanout):
    # DirectFanout comes after AsyncRedisManager in the bases, so in the method
    # order it sits below AsyncPubSubManager, whose local delivery (of this
    # node's emits and of those heard from Redis) calls super().emit().
    name = "chatsio-redis"

    def __init__(
        self,
        url: str,
        *,
        channel: str | None = None,
        write_only: bool = False,
        verify_tls: bool = True,
    ) -> None:
        channel = channel or default_channel(url)
        super().__init__(url, channel=channel, write_only=write_only)
        self.verify_tls = verify_tls
        self.certificate_reported = False
        self.outbox: asyncio.Queue[dict] = asyncio.Queue(OUTBOX_MAX)
        self.publisher: asyncio.Task | None = None
        self.watchdog: asyncio.Task | None = None
        self.client = None
        self.faults: dict[str, str] = {}
        self.listening = asyncio.Event()  # set while subscribed
        self.dropped = 0

    # -- health ---------------------------------------------------------------

    def fault(self, path: str, cause: BaseException | str) -> None:
        """Record that ``path`` (publish or listen) fails; log when it starts."""
        text = str(cause) or type(cause).__name__
        if path not in self.faults:
            self._report(path, cause, text)
        self.faults[path] = text

    def _report(self, path: str, cause: BaseException | str, text: str) -> None:
        if not certificate_rejected(cause):
            logger.error(
                "redis %s failing (%s): cross-node delivery is degraded; "
                "this node keeps serving its own sockets",
                path,
                text,
            )
        elif not self.certificate_reported:
            self.certificate_reported = True
            logger.error(
                "redis's TLS certificate failed verification (%s): set %s=false "
                "if it is self-signed, as Heroku Redis's is; until then "
                "cross-node delivery is off and this node serves its own sockets",
                text,
                TLS_VERIFY_SETTING,
            )

    def recovered(self, path: str) -> None:
        if self.faults.pop(path, None) is not None:
            logger.warning("redis %s working again", path)
        if not self.faults:
            self.certificate_reported = False

    async def probe(self) -> None:
        """Raise unless both paths work and Redis answers a PING within 1 s."""
        if self.faults:
            raise RedisUnavailable(
                "; ".join(f"{k}: {v}" for k, v in self.faults.items())
            )
        if not self.write_only and not self.listening.is_set():
            raise RedisUnavailable("not subscribed")
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            try:
                await self._publish_client().ping()
            except (RedisError, OSError):
                # An idle client may hold a connection from before a Redis
                # restart: one fresh try before calling Redis down.
                await self._reset_publish_client()
                await self._publish_client().ping()

    # -- publishing -----------------------------------------------------------

    async def _publish(self, data: dict) -> None:
        if self.publisher is None or self.publisher.done():
            self.publisher = asyncio.create_task(self._drain_outbox())
        if self.outbox.full():
            self.outbox.get_nowait()  # the oldest goes: recoverable from the database
            self.outbox.task_done()
            self.dropped += 1
        self.outbox.put_nowait(data)

    async def _drain_outbox(self) -> None:
        while True:
            batch = [await self.outbox.get()]
            while len(batch) < BATCH_MAX and not self.outbox.empty():
                batch.append(self.outbox.get_nowait())
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped += len(batch)
                self.fault("publish", exc)
                await self._reset_publish_client()
            else:
                self.recovered("publish")
            finally:
                for _ in batch:
                    self.outbox.task_done()

    async def _send(self, batch: list[dict]) -> None:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            pipe = self._publish_client().pipeline(transaction=False)
            for message in batch:
                pipe.publish(self.channel, self.json.dumps(message))
            await pipe.execute()

    def _publish_client(self):
        if self.client is None:
            self.client = self._new_client()
        return self.client

    async def _reset_publish_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await close_quietly(client)

    async def flush(self, within: float) -> bool:
        """Wait until every queued emit was handed to Redis or dropped."""
        try:
            async with asyncio.timeout(within):
                await self.outbox.join()
        except TimeoutError:
            return False
        return not self.faults

    # -- listening ------------------------------------------------------------

    def initialize(self) -> None:
        super().initialize()  # starts self.thread, the stock dispatch loop
        if not self.write_only:
            self.watchdog = self.server.start_background_task(self._watch)

    async def start(self, within: float) -> None:
        """Subscribe now rather than at the first connection, as python-socketio
        would; wait up to ``within`` seconds, then go on degraded if need be."""
        if not self.server.manager_initialized:
            self.server.manager_initialized = True
            self.initialize()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.listening.wait()

    async def _watch(self) -> None:
        """Restart the listener task if it ever ends, whatever ended it."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            if self.thread.done():
                self.listening.clear()
                self.fault("listen", "the listener task stopped")
                self.thread = self.server.start_background_task(self._thread)

    async def _listen(self):
        channel = self.channel.encode()
        while True:
            client = self._new_client()
            pubsub = client.pubsub()
            try:
                async for message in self._receive(pubsub):
                    if message["type"] == "message" and message["channel"] == channel:
                        yield message["data"]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.fault("listen", exc)
            finally:
                self.listening.clear()
                await close_quietly(pubsub)
                await close_quietly(client)
            await asyncio.sleep(RETRY_EVERY)

    async def _receive(self, pubsub):
        """Messages from one subscription, until Redis errs or falls silent."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await pubsub.subscribe(self.channel)
        self.listening.set()
        self.recovered("listen")
        heard = pinged = loop.time()
        while True:
            message = await pubsub.get_message(timeout=PING_EVERY)
            now = loop.time()
            if message is not None:
                heard = now
                yield message
            if now - heard > SILENCE_LIMIT:
                raise RedisUnavailable(f"no answer for {SILENCE_LIMIT:.0f} s")
            if now - pinged >= PING_EVERY:
                pinged = now
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await pubsub.ping()

    # -- evicting ------------------------------------------------------------

    async def evict(self, room: str, holders: str, namespace: str) -> None:
        """Here, then on every other node, through the outbox (so in order with
        the emits around it): a ``leave_room`` message naming ``holders``
        instead of a sid. python-socketio's ``_handle_leave_room`` (an older
        node's) ignores it, as no socket has the sid None."""
        await super().evict(room, holders, namespace)
        await self._publish(
            {
                "method": "leave_room",
                "sid": None,
                "holders": holders,
                "room": room,
                "namespace": namespace,
                "host_id": self.host_id,
            }
        )

    async def _handle_leave_room(self, message: dict) -> None:
        # python-socketio's listener (AsyncPubSubManager._thread) calls this
        # for every "leave_room" message from another node.
        if message.get("holders") is None:
            return await super()._handle_leave_room(message)
        await super().evict(
            message.get("room"), message["holders"], message.get("namespace")
        )

    # -- shared ---------------------------------------------------------------

    def _new_client(self):
        module = self._get_redis_module()
        if urlparse(self.redis_url).scheme.endswith("+sentinel"):
            sentinels, service, options = parse_redis_sentinel_url(self.redis_url)
            sentinel = module.sentinel.Sentinel(sentinels, **TIMEOUTS)
            return sentinel.master_for(service or BASE_NAME, **TIMEOUTS, **options)
        options = dict(CLIENT_OPTIONS)
        if not self.verify_tls and urlparse(self.redis_url).scheme == "rediss":
            # Heroku's advice for redis-py; the URL's own ssl_cert_reqs wins.
            options["ssl_cert_reqs"] = "none"
        return module.Redis.from_url(self.redis_url, **options)

    async def aclose(self) -> None:
        """Stop every task and close every connection (the stock manager can't)."""
        listener = getattr(self, "thread", None)  # set by initialize(), if run
        tasks = [t for t in (self.watchdog, listener, self.publisher) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._reset_publish_client()


def default_channel(url: str) -> str:
    """``chatsio`` on database 0 (or none), the name every node used before the
    setting, so that a rolling upgrade keeps them talking; ``chatsio:db<N>`` on
    database N, so that deployments on one Redis keep apart by default."""
    if urlparse(url).scheme.endswith("+sentinel"):
        options = parse_redis_sentinel_url(url)[2]
    else:
        options = parse_url(url)
    number = int(options.get("db") or 0)
    return BASE_NAME if number == 0 else f"{BASE_NAME}:db{number}"


def certificate_rejected(cause: BaseException | str) -> bool:
    """Whether ``cause`` is, or was raised from, a failed TLS verification."""
    while isinstance(cause, BaseException):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


async def close_quietly(resource) -> None:
    """Close a Redis client or pub/sub, giving up after CLOSE_TIMEOUT."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await resource.aclose()
