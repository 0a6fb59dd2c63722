"""Cross-node messages over Redis pub/sub that degrade instead of stalling.

python-socketio's ``AsyncRedisManager`` publishes in the emitting task (an ack
waits on Redis, up to 10 s when Redis hangs), retries its subscription with a
backoff that grows to 60 s, logs every failed emit, and grows its connection
pool under a hung Redis. ``RedisBus`` is no manager: it only carries dicts in
python-socketio's pub/sub format (``cluster.ClusterFanout`` makes and reads
them) between nodes, and owns every Redis connection:

- publishing: messages go into a bounded in-process queue that one task drains
  in order, pipelined, each batch bounded by PUBLISH_TIMEOUT. An ack never
  waits on Redis. While Redis is down batches are dropped (the database has
  every message; ``catchup`` recovers them), and Redis is pinged every
  RETRY_EVERY until publishing works again, which is reported at once.
- listening: one pub/sub connection, pinged every PING_EVERY; silence for
  SILENCE_LIMIT counts as down. Resubscription is retried every RETRY_EVERY,
  and a watchdog restarts the listener task if it ever ends.

Channels: a message for a room goes to the room's sharded channel (SPUBLISH,
``channels.room_channel``), which a node subscribes to (SSUBSCRIBE) while the
room has members on it (``host``); anything else goes to the broadcast
channel (PUBLISH), which every node subscribes to, as python-socketio's
managers do. A node skips its own publications by their first bytes, before
decoding them. The broadcast channel is named by CHATSIO_REDIS_CHANNEL, by
default from the database number in the URL (``default_channel``): Redis
pub/sub ignores that number, so deployments sharing one Redis would otherwise
hear each other; the room channels are named after it.

Each failure is logged once when it starts and once when it clears, when
``on_recovery`` is told too, with the time (ms) the path first failed: what
was lost went out from then on (see ``catchup``); ``probe`` tells the health
check. A ``rediss://`` server whose certificate fails verification is one
line for both paths, naming the setting that accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from chatsio.config import SETTINGS_BY_FIELD
from chatsio.protocol import now_ms
from chatsio.transport import fastjson
from chatsio.transport.channels import RoomChannels, room_channel
from chatsio.transport.redis_clients import RedisTarget

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 1.0
PING_EVERY = 1.0
SILENCE_LIMIT = 3.0
RETRY_EVERY = 0.5
WATCH_EVERY = 1.0
CLOSE_TIMEOUT = 1.0
OUTBOX_MAX = 10_000
BATCH_MAX = 256
JOIN_WAIT = 1.0  # a room's first member waits this long for its channel
CHANNELS_PER_COMMAND = 1000
ANSWERS = ("ssubscribe", "sunsubscribe")
TLS_VERIFY_SETTING = SETTINGS_BY_FIELD["redis_tls_verify"].env
# The channel on database 0.
BASE_NAME = "chatsio"

Receiver = Callable[[dict], Awaitable[None]]


class RedisUnavailable(ConnectionError):
    """Redis is not serving this node's publish or subscribe path."""


class RedisBus:
    """Publishes this node's messages and hands other nodes' to a receiver.

    Write-only (``chatsio notify``) until ``start`` gives it a receiver.
    ``on_recovery(path, since)`` is called when ``"publish"`` or ``"listen"``
    works again after failing since ``since`` (ms): what was said meanwhile
    never crossed.
    """

    def __init__(
        self, url: str, *, channel: str | None = None, verify_tls: bool = True
    ) -> None:
        self.url = url
        self.channel = channel or default_channel(url)
        self.verify_tls = verify_tls
        self.target = RedisTarget(url, verify_tls=verify_tls)
        self.host_id = uuid.uuid4().hex  # python-socketio's: skips our echoes
        # Every message this node publishes starts with these bytes (orjson
        # keeps the key first and writes no spaces).
        self.own_prefix = fastjson.dumps({"host_id": self.host_id})[:-1].encode()
        self.rooms = RoomChannels()
        self.received = {"room": 0, "broadcast": 0}  # by the listener, ours too
        self.on_recovery: Callable[[str, int], None] | None = None
        self.certificate_reported = False
        self.outbox: asyncio.Queue[tuple[str | None, dict]] = asyncio.Queue(OUTBOX_MAX)
        self.publisher: asyncio.Task | None = None
        self.listener: asyncio.Task | None = None
        self.watchdog: asyncio.Task | None = None
        self.receiver: Receiver | None = None
        self.client = None
        self.faults: dict[str, str] = {}
        self.failing_since: dict[str, int] = {}  # ms, by path in ``faults``
        self.listening = asyncio.Event()  # set while subscribed
        self.dropped = 0

    # -- health ---------------------------------------------------------------

    def fault(self, path: str, cause: BaseException | str) -> None:
        """Record that ``path`` (publish or listen) fails; log when it starts."""
        text = str(cause) or type(cause).__name__
        if path not in self.faults:
            self.failing_since[path] = now_ms()
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
            since = self.failing_since.pop(path)
            logger.warning("redis %s working again", path)
            if self.on_recovery is not None:
                self.on_recovery(path, since)
        if not self.faults:
            self.certificate_reported = False

    async def probe(self) -> None:
        """Raise unless both paths work and Redis answers a PING within 1 s."""
        if self.faults:
            raise RedisUnavailable(
                "; ".join(f"{k}: {v}" for k, v in self.faults.items())
            )
        if self.receiver is not None and not self.listening.is_set():
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

    def publish(self, message: dict, room: str | None = None) -> None:
        """Queue ``message`` for the nodes hosting ``room`` (every node when
        None); never waits on Redis."""
        if self.publisher is None or self.publisher.done():
            self.publisher = asyncio.create_task(self._drain_outbox())
        if self.outbox.full():
            self.outbox.get_nowait()  # the oldest goes: recoverable from the database
            self.outbox.task_done()
            self.dropped += 1
        self.outbox.put_nowait((room, {"host_id": self.host_id, **message}))

    async def _drain_outbox(self) -> None:
        while True:
            batch = [await self._next_message()]
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

    async def _next_message(self) -> tuple[str | None, dict]:
        """The next queued message; while publishing fails, Redis is pinged
        every RETRY_EVERY meanwhile, so that its return is known without
        waiting for something to say."""
        while "publish" in self.faults:
            try:
                async with asyncio.timeout(RETRY_EVERY):
                    return await self.outbox.get()
            except TimeoutError:
                if await self._answers():
                    self.recovered("publish")
        return await self.outbox.get()

    async def _answers(self) -> bool:
        """Whether Redis answers a PING on the publishing connection."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._publish_client().ping()
        except Exception:
            await self._reset_publish_client()
            return False
        return True

    async def _send(self, batch: list[tuple[str | None, dict]]) -> None:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            pipe = self.target.batch(self._publish_client())
            for room, message in batch:
                if room is None:
                    pipe.publish(self.channel, fastjson.dumps(message))
                else:
                    channel = room_channel(self.channel, room)
                    pipe.spublish(channel, fastjson.dumps(message))
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
        """Wait until every queued message was handed to Redis or dropped."""
        try:
            async with asyncio.timeout(within):
                await self.outbox.join()
        except TimeoutError:
            return False
        return not self.faults

    # -- listening ------------------------------------------------------------

    async def start(self, receiver: Receiver, within: float) -> None:
        """Subscribe, handing every other node's message to ``receiver``; wait
        up to ``within`` seconds, then go on degraded if need be."""
        self.receiver = receiver
        self.listener = asyncio.create_task(self._listen())
        self.watchdog = asyncio.create_task(self._watch())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.listening.wait()

    async def _watch(self) -> None:
        """Restart the listener task if it ever ends, whatever ended it."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            if self.listener.done():
                self.listening.clear()
                self.fault("listen", "the listener task stopped")
                self.listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        while True:
            client = self._new_client()
            pubsub = self.target.subscriber(client)
            syncer = None
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await pubsub.subscribe(self.channel)
                    first = set(await self._subscribe_rooms(pubsub))
                syncer = asyncio.create_task(self._keep_rooms(pubsub))
                async for data in self._receive(pubsub, syncer, first):
                    await self._hand_over(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.fault("listen", exc)
            finally:
                self.listening.clear()
                self.rooms.lost()
                if syncer is not None:
                    syncer.cancel()
                    await asyncio.gather(syncer, return_exceptions=True)
                await close_quietly(pubsub)
                await close_quietly(client)
            await asyncio.sleep(RETRY_EVERY)

    async def _hand_over(self, data: bytes) -> None:
        """Decode one message and give it to the receiver, unless it is ours;
        a message that breaks the receiver is logged and the next one goes on."""
        if data.startswith(self.own_prefix):
            return
        try:
            message = fastjson.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("host_id") == self.host_id:
            return
        try:
            await self.receiver(message)
        except Exception:
            logger.exception("a message from redis could not be delivered")

    async def _receive(self, pubsub, syncer: asyncio.Task, first: set[str]):
        """Messages from the subscriptions, until Redis errs or falls silent.
        Listening once Redis confirmed the room channels of ``first``."""
        loop = asyncio.get_running_loop()
        broadcast = self.channel.encode()
        received = self.received
        ready = False
        heard = pinged = loop.time()
        while True:
            if not (ready or first):
                ready = True
                self.listening.set()
                self.recovered("listen")
            message = await pubsub.get_message(timeout=PING_EVERY)
            now = loop.time()
            if message is not None:
                heard = now
                kind = message["type"]
                if kind == "smessage":
                    received["room"] += 1
                    yield message["data"]
                elif kind == "message" and message["channel"] == broadcast:
                    received["broadcast"] += 1
                    yield message["data"]
                elif kind in ANSWERS:
                    channel = message["channel"].decode()
                    self.rooms.answered(channel)
                    first.discard(channel)
            if syncer.done():
                raise syncer.exception() or RedisUnavailable("subscribing stopped")
            if now - heard > SILENCE_LIMIT:
                raise RedisUnavailable(f"no answer for {SILENCE_LIMIT:.0f} s")
            if now - pinged >= PING_EVERY:
                pinged = now
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await pubsub.ping()

    # -- room channels --------------------------------------------------------

    async def host(self, room: str) -> None:
        """Listen to ``room``'s channel: it has a member here. Returns once
        Redis delivers the channel here (at once if it does already), after
        JOIN_WAIT at most, and at once while the listener is down (the
        catch-up that follows its recovery covers the room)."""
        waiter = self.rooms.need(room_channel(self.channel, room))
        if waiter is None or not self.listening.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(JOIN_WAIT):
                await asyncio.shield(waiter)

    def unhost(self, room: str) -> None:
        """``room`` has no member here any more: stop listening to it later."""
        channel = room_channel(self.channel, room)
        self.rooms.release(channel, asyncio.get_running_loop().time())

    async def _keep_rooms(self, pubsub) -> None:
        """Subscribe and unsubscribe room channels as rooms fill and empty,
        each round carrying what changed since the last."""
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.rooms.next_expiry(loop.time())):
                    await self.rooms.changed.wait()
            self.rooms.changed.clear()
            await self._subscribe_rooms(pubsub)

    async def _subscribe_rooms(self, pubsub) -> list[str]:
        """Send one round of SSUBSCRIBE and SUNSUBSCRIBE (Redis answers each
        channel on the pub/sub connection); the channels subscribed.

        Raw commands: redis.asyncio's ``PubSub`` at the floor (5.0.1) has no
        ``ssubscribe``, and its ``get_message`` returns the answers and the
        ``smessage``s as dicts all the same."""
        subscribe, unsubscribe = self.rooms.round(asyncio.get_running_loop().time())
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            for command, channels in (
                ("SSUBSCRIBE", subscribe),
                ("SUNSUBSCRIBE", unsubscribe),
            ):
                for start in range(0, len(channels), CHANNELS_PER_COMMAND):
                    batch = channels[start : start + CHANNELS_PER_COMMAND]
                    await pubsub.execute_command(command, *batch)
        return subscribe

    # -- shared ---------------------------------------------------------------

    def _new_client(self):
        return self.target.client()

    async def aclose(self) -> None:
        """Stop every task and close every connection."""
        tasks = [t for t in (self.watchdog, self.listener, self.publisher) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._reset_publish_client()


def default_channel(url: str) -> str:
    """``chatsio`` on database 0 (or none), the name every node used before the
    setting, so that a rolling upgrade keeps them talking; ``chatsio:db<N>`` on
    database N, so that deployments on one Redis keep apart by default."""
    number = RedisTarget(url).database()
    return BASE_NAME if number == 0 else f"{BASE_NAME}:db{number}"


def certificate_rejected(cause: BaseException | str) -> bool:
    """Whether ``cause`` is, or was raised from, a failed TLS verification.
    Each exception is looked at once: a chain may loop back on itself."""
    seen: set[int] = set()
    while isinstance(cause, BaseException) and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


async def close_quietly(resource) -> None:
    """Close a Redis client or pub/sub, giving up after CLOSE_TIMEOUT."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await resource.aclose()
