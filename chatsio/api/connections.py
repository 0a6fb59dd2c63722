"""Slow and idle HTTP connections: capped per client address, and bodies
held to a minimum rate.

aiohttp closes a connection whose request headers have not all arrived
``keepalive_timeout`` after it opened or after its last response (the app's
``handler_args``, see ``app.create_app``): idle TCP connections, half-sent or
dripped headers, idle keep-alive. What it lacks is here:

- a cap on the connections one client address holds without a session: a
  connection counts from its opening until it carries a request of an
  Engine.IO session that a namespace has accepted (a valid token); past the
  cap, a new one is closed at once. Connections from trusted proxies are not
  counted: every client behind a proxy shares its address;
- a minimum rate for request bodies (REST and long-polling POSTs alike): a
  body must have arrived ``grace`` seconds after its headers, plus one second
  per ``min_rate`` bytes received, or its connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from ipaddress import ip_address, ip_network

from aiohttp import web

logger = logging.getLogger(__name__)

SWEEP_EVERY = 1.0  # seconds between two checks of the bodies in flight


class ConnectionGuard:
    """Counts connections per client address and watches request bodies."""

    def __init__(
        self,
        *,
        per_address: int,
        min_rate: int,
        grace: float,
        trusted: Iterable[str] = (),
    ) -> None:
        self.per_address = per_address
        self.min_rate = min_rate
        self.grace = grace
        self.networks = [ip_network(item, strict=False) for item in trusted]
        self.counts: Counter[str] = Counter()
        self.counted: dict[object, str] = {}  # RequestHandler -> its address
        self.refusing: set[str] = set()  # addresses at the cap, logged once
        # A connection's RequestHandler -> its request with a body in flight,
        # and when its headers came (one request at a time per connection).
        self.bodies: dict[object, tuple[web.BaseRequest, float]] = {}
        self.sweeper: asyncio.TimerHandle | None = None

    def counted_for(self, address: str) -> int:
        return self.counts[address]

    def watch(self, server: web.Server) -> None:
        """Hear of every connection ``server`` (aiohttp's protocol factory)
        makes and loses: each RequestHandler reports both to it."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler, transport) -> None:
            made(handler, transport)
            self.opened(handler, transport)

        def connection_lost(handler, exc=None) -> None:
            lost(handler, exc)
            self.closed(handler)

        server.connection_made = connection_made
        server.connection_lost = connection_lost

    def opened(self, handler, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else None
        if address is None or self.is_trusted(address):
            return
        if self.counts[address] >= self.per_address:
            if address not in self.refusing:
                self.refusing.add(address)
                logger.warning(
                    "refusing connections from %s: %d open without a session",
                    address,
                    self.counts[address],
                )
            transport.abort()
            return
        self.counts[address] += 1
        self.counted[handler] = address

    def closed(self, handler) -> None:
        self.release(handler)

    def trust(self, handler) -> None:
        """``handler``'s connection carries an accepted session: uncounted."""
        self.release(handler)

    def release(self, handler) -> None:
        address = self.counted.pop(handler, None)
        if address is None:
            return
        self.counts[address] -= 1
        if not self.counts[address]:
            del self.counts[address]
        if address in self.refusing and self.counts[address] < self.per_address:
            self.refusing.discard(address)
            logger.info("accepting connections from %s again", address)

    def is_trusted(self, address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        """Watch the request's body, if it has one, while its handler runs."""
        if not request.body_exists:
            return await handler(request)
        connection = request.protocol
        self.bodies[connection] = (request, asyncio.get_running_loop().time())
        if self.sweeper is None:
            self.schedule()
        try:
            return await handler(request)
        finally:
            self.bodies.pop(connection, None)

    def schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self.sweeper = loop.call_later(SWEEP_EVERY, self.sweep)

    def sweep(self) -> None:
        """Close the connections whose bodies fell behind the minimum rate."""
        self.sweeper = None
        now = asyncio.get_running_loop().time()
        for connection, (request, started) in list(self.bodies.items()):
            content = request.content
            if content.is_eof():
                del self.bodies[connection]
            elif now > started + self.grace + content.total_bytes / self.min_rate:
                del self.bodies[connection]
                logger.info(
                    "closing a connection from %s: its request body came at "
                    "%.0f bytes/s",
                    request.remote,
                    content.total_bytes / (now - started),
                )
                if request.transport is not None:
                    request.transport.close()
        if self.bodies:
            self.schedule()


def guard_connections(app: web.Application, guard: ConnectionGuard) -> None:
    """Have the server every runner builds for ``app`` report to ``guard``.

    aiohttp internal: ``Application._make_handler`` builds the ``web.Server``
    that ``AppRunner`` (so ``web.run_app`` and the test server alike) hands to
    the event loop as its protocol factory; each connection's RequestHandler
    calls that server's ``connection_made`` and ``connection_lost``.
    tests/test_hostile_transport.py fails if an upgrade moves either.
    """
    make_handler = app._make_handler

    def make_guarded_handler(**kwargs) -> web.Server:
        server = make_handler(**kwargs)
        guard.watch(server)
        return server

    app._make_handler = make_guarded_handler
