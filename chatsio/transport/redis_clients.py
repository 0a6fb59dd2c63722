"""Redis clients for a ``REDIS_URL``: one server, TLS, Sentinel, or a Cluster.

``redis://`` and ``rediss://`` name one server; ``redis+sentinel://`` a
Sentinel set (python-socketio's form); ``redis+cluster://host:port`` and
``rediss+cluster://`` one node of a Redis Cluster, from which the client
learns the others. On a cluster, PUBLISH and SPUBLISH go through redis-py's
``RedisCluster`` (an SPUBLISH to the master owning its channel's slot).

Subscribing on a cluster takes ``ShardedSubscriber`` rather than redis-py's
``ClusterPubSub`` (redis-py 8.0 and later): that one hides a master's failure
from its reader while another master answers, and reconnects it silently, so
what was published meanwhile would be lost without the bus knowing. Here each
master the subscriptions need gets one plain pub/sub connection, and any of
them failing or falling silent fails the whole subscriber, as one Redis
failing would: the bus then subscribes everything anew and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.utils import str_if_bytes
from socketio.redis_manager import parse_redis_sentinel_url

TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
CLIENT_OPTIONS = {
    **TIMEOUTS,
    "retry": Retry(NoBackoff(), 0),  # the bus's loops do the retrying
    "max_connections": 4,  # publisher, probe, one spare; pub/sub has its own
}
# The Sentinel service's name when the URL has none (python-socketio's
# fallback was its channel, always this name).
SENTINEL_SERVICE = "chatsio"
CLUSTER_SUFFIX = "+cluster"
# A master that answered nothing for this long (pings go every second) counts
# as down: a frozen one never closes its connection.
SILENCE_LIMIT = 3.0
READ_EVERY = 1.0


class RedisTarget:
    """What one ``REDIS_URL`` reaches, and how to make clients for it."""

    def __init__(self, url: str, *, verify_tls: bool = True) -> None:
        self.url = url
        self.verify_tls = verify_tls
        scheme = urlsplit(url).scheme
        self.sentinel = scheme.endswith("+sentinel")
        self.cluster = scheme.endswith(CLUSTER_SUFFIX)

    def client(self):
        """A client for publishing and PING: ``Redis`` or ``RedisCluster``."""
        if self.sentinel:
            sentinels, service, options = parse_redis_sentinel_url(self.url)
            sentinel = aioredis.sentinel.Sentinel(sentinels, **TIMEOUTS)
            return sentinel.master_for(
                service or SENTINEL_SERVICE, **TIMEOUTS, **options
            )
        if self.cluster:
            return RedisCluster.from_url(self.server_url(), **self._options())
        return aioredis.Redis.from_url(self.url, **self._options())

    def subscriber(self, client):
        """A pub/sub for ``client`` (from ``client()``), closed by its owner."""
        if isinstance(client, RedisCluster):
            return ShardedSubscriber(client, self)
        return client.pubsub()

    def batch(self, client):
        """A pipeline of PUBLISH and SPUBLISH for ``client``; ``execute`` sends it."""
        if isinstance(client, RedisCluster):
            return ClusterBatch(client)
        return client.pipeline(transaction=False)

    def server_url(self, host: str | None = None, port: int | None = None) -> str:
        """The URL without ``+cluster``, naming ``host:port`` if given."""
        if not self.cluster:
            return self.url  # urlunsplit would drop unix:///'s empty host
        parts = urlsplit(self.url)
        scheme = parts.scheme.removesuffix(CLUSTER_SUFFIX)
        netloc = parts.netloc
        if host is not None:
            netloc = f"{netloc.rpartition('@')[0]}@" if "@" in netloc else ""
            netloc += f"{host}:{port}"
        return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))

    def database(self) -> int:
        """The database number the URL names (0 if none)."""
        if self.sentinel:
            options = parse_redis_sentinel_url(self.url)[2]
        else:
            options = parse_url(self.server_url())
        return int(options.get("db") or 0)

    def _options(self) -> dict:
        options = dict(CLIENT_OPTIONS)
        if not self.verify_tls and urlsplit(self.url).scheme.startswith("rediss"):
            # Heroku's advice for redis-py; the URL's own ssl_cert_reqs wins.
            options["ssl_cert_reqs"] = "none"
        return options

    def shard_client(self, host: str, port: int) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.server_url(host, port), **self._options())


class ClusterBatch:
    """A cluster pipeline whose PUBLISH is an SPUBLISH: on a cluster every
    channel is sharded, the broadcast one too (a cluster relays a PUBLISH to
    every master, the cost sharded pub/sub avoids, and redis-py refuses it in
    a cluster pipeline). Each goes to its channel's master, in order."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.pipe = cluster.pipeline(transaction=False)

    def publish(self, channel, message) -> None:
        self.pipe.spublish(channel, message)

    def spublish(self, channel, message) -> None:
        self.pipe.spublish(channel, message)

    async def execute(self) -> list:
        return await self.pipe.execute()


class ShardedSubscriber:
    """redis-py's ``PubSub`` surface (subscribe, ssubscribe, their undoing,
    get_message, ping, aclose) over the masters of a cluster.

    A channel goes to the master owning its slot, SSUBSCRIBE or SUBSCRIBE
    alike (a plain SUBSCRIBE hears every master's PUBLISH, so any would do);
    one SSUBSCRIBE per slot, as a cluster refuses one spanning slots.
    """

    def __init__(self, cluster: RedisCluster, target: RedisTarget) -> None:
        self.cluster = cluster
        self.target = target
        self.shards: dict[str, Shard] = {}
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.broadcasts: set = set()  # subscribed as SUBSCRIBE: told so

    async def subscribe(self, *channels) -> None:
        self.broadcasts.update(map(str_if_bytes, channels))
        await self._each_slot(channels, "ssubscribe")

    async def unsubscribe(self, *channels) -> None:
        await self._each_slot(channels, "sunsubscribe")
        self.broadcasts.difference_update(map(str_if_bytes, channels))

    async def ssubscribe(self, *channels) -> None:
        await self._each_slot(channels, "ssubscribe")

    async def sunsubscribe(self, *channels) -> None:
        await self._each_slot(channels, "sunsubscribe")

    async def execute_command(self, command: str, *channels) -> None:
        """The bus's raw SSUBSCRIBE and SUNSUBSCRIBE, split by slot."""
        await self._each_slot(channels, command.lower())

    async def _each_slot(self, channels, command: str) -> None:
        await self.cluster.initialize()  # at once unless a refresh is due
        by_slot = defaultdict(list)
        for channel in channels:
            by_slot[self.cluster.keyslot(channel)].append(channel)
        for names in by_slot.values():
            node = self.cluster.get_node_from_key(names[0])
            shard = self.shards.get(node.name)
            if shard is None:
                client = self.target.shard_client(node.host, node.port)
                shard = self.shards[node.name] = Shard(node.name, client, self.inbox)
            await shard.send(command, names)

    async def get_message(
        self,
        ignore_subscribe_messages: bool = False,
        timeout: float | None = 0.0,  # noqa: ASYNC109 -- PubSub.get_message's
    ):
        """The next message from any master; a master's failure is raised."""
        try:
            async with asyncio.timeout(timeout):
                item = await self.inbox.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        kind = item["type"]
        if ignore_subscribe_messages and kind in SUBSCRIBE_REPLIES:
            return None
        if str_if_bytes(item.get("channel")) in self.broadcasts:
            item["type"] = AS_BROADCAST.get(kind, kind)
        return item

    async def ping(self) -> None:
        """PING every master (their PONGs come as messages); raise if one has
        been silent for SILENCE_LIMIT."""
        for shard in self.shards.values():
            shard.check_heard()
            await shard.pubsub.ping()

    async def aclose(self) -> None:
        for shard in self.shards.values():
            await shard.aclose()
        self.shards.clear()


SUBSCRIBE_REPLIES = {"subscribe", "unsubscribe", "ssubscribe", "sunsubscribe"}
# A broadcast channel's replies and messages, as SUBSCRIBE would have had them.
AS_BROADCAST = {
    "smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"
}  # fmt: skip


class Shard:
    """One master's pub/sub connection and the task reading it into an inbox."""

    def __init__(self, name: str, client: aioredis.Redis, inbox: asyncio.Queue):
        self.name = name
        self.client = client
        self.pubsub = client.pubsub()
        self.inbox = inbox
        self.reader: asyncio.Task | None = None
        self.heard = asyncio.get_running_loop().time()

    async def send(self, command: str, channels: list) -> None:
        await getattr(self.pubsub, command)(*channels)
        if self.reader is None:
            self.heard = asyncio.get_running_loop().time()
            self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                message = await self.pubsub.get_message(timeout=READ_EVERY)
                if message is not None:
                    self.heard = loop.time()
                    self.inbox.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.inbox.put_nowait(exc)

    def check_heard(self) -> None:
        silent = asyncio.get_running_loop().time() - self.heard
        if silent > SILENCE_LIMIT:
            raise ConnectionError(f"redis {self.name} silent for {silent:.0f} s")

    async def aclose(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()
