"""What every chatsio namespace shares: identity, the allowance, error replies."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import socketio

from chatsio.errors import (
    ChatsioError,
    InternalFault,
    InvalidPayload,
    RateLimited,
    Unauthorized,
)
from chatsio.metrics import Metrics
from chatsio.services import Services
from chatsio.sockets.ratelimit import Allowance, Allowances, TokenBucket

logger = logging.getLogger(__name__)


@dataclass
class Connection:
    user: str
    bucket: TokenBucket
    account: str  # the user's token key when it connected
    expiry: asyncio.TimerHandle | None = None
    strikes: int = 0  # events refused in a row for going over the allowance


def ok(**fields: Any) -> dict:
    return {"ok": True, **fields}


def failure(error: ChatsioError) -> dict:
    return {"ok": False, "error": error.to_dict()}


def token_from(auth: Any, environ: dict) -> str | None:
    """The token from ``auth: {token}``, else from ``Authorization: Bearer``."""
    if isinstance(auth, dict) and "token" in auth:
        return auth["token"]
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class BaseNamespace(socketio.AsyncNamespace):
    """Authenticates on connect and turns every event into exactly one ack.

    Each ``on_<event>(sid, user, payload)`` handler returns the ack's extra
    fields; a ChatsioError it raises becomes the error ack. Every other name
    it adds to ``AsyncNamespace`` starts with ``chatsio_`` (``_chatsio_``
    when private), so that no python-socketio name of tomorrow is shadowed and
    no client event reaches it (events are looked up as ``on_<event>``).
    """

    def __init__(
        self,
        namespace: str,
        services: Services,
        allowance: Allowance,
        metrics: Metrics,
    ) -> None:
        super().__init__(namespace)
        self.chatsio_services = services
        self.chatsio_allowance = allowance
        self.chatsio_allowances = Allowances(allowance)
        self.chatsio_metrics = metrics
        self.chatsio_connections: dict[str, Connection] = {}

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        try:
            token = await self.chatsio_services.identity.verify(
                token_from(auth, environ)
            )
            self._chatsio_check_capacity(token.username)
        except ChatsioError as exc:
            logger.info(
                "refused %s on %s from %s: %s",
                sid,
                self.namespace,
                environ.get("REMOTE_ADDR"),
                exc.message,
            )
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, exc.to_dict()
            ) from None
        user = token.username
        connection = Connection(user, self.chatsio_allowances.open(user), token.account)
        self.chatsio_connections[sid] = connection
        connection.expiry = self._chatsio_end_at_expiry(sid, token.expires_at)
        await self.chatsio_authenticated(sid, user)
        self.chatsio_metrics.sockets.labels(self.namespace).inc()
        logger.info(
            "connect %s sid=%s user=%s addr=%s",
            self.namespace,
            sid,
            user,
            environ.get("REMOTE_ADDR"),
        )

    def _chatsio_check_capacity(self, user: str) -> None:
        """Refuse a flooder in their cool-down, and one more connection of a
        user who holds the maximum already."""
        barred_for = self.chatsio_allowances.barred_for(user)
        if barred_for:
            raise RateLimited(
                f"disconnected for flooding: try again in {barred_for:.0f} s"
            )
        held = sum(1 for c in self.chatsio_connections.values() if c.user == user)
        if held >= self.chatsio_allowance.connections_per_user:
            raise RateLimited(
                f"too many connections: at most "
                f"{self.chatsio_allowance.connections_per_user} per user"
            )

    def _chatsio_end_at_expiry(self, sid: str, expires_at: int) -> asyncio.TimerHandle:
        """Disconnect the socket when its token expires."""
        loop = asyncio.get_running_loop()
        delay = max(0.0, expires_at / 1000 - time.time())
        return loop.call_later(
            delay,
            self.server.start_background_task,
            self._chatsio_drop,
            sid,
            "token expired",
        )

    async def _chatsio_drop(self, sid: str, why: str) -> None:
        connection = self.chatsio_connections.get(sid)
        logger.info(
            "disconnecting %s sid=%s user=%s: %s",
            self.namespace,
            sid,
            connection and connection.user,
            why,
        )
        await self.disconnect(sid)

    async def chatsio_drop_stale_accounts(self) -> None:
        """Disconnect the sockets whose user has been deleted (and perhaps
        registered again, a new account under the same name) since they
        connected: their tokens are refused now, and so are they."""
        if not self.chatsio_connections:
            return
        users = {connection.user for connection in self.chatsio_connections.values()}
        current = await self.chatsio_services.identity.accounts(users)
        for sid, connection in list(self.chatsio_connections.items()):
            if current.get(connection.user) != connection.account:
                await self._chatsio_drop(sid, "the account no longer exists")

    async def chatsio_authenticated(self, sid: str, user: str) -> None:
        """Hook for the namespace: runs before the connection is accepted."""

    def chatsio_user_of(self, sid: str) -> str | None:
        """The user of socket ``sid``, if connected (``ChatsioServer`` asks,
        for the attachment budgets)."""
        connection = self.chatsio_connections.get(sid)
        return connection.user if connection else None

    def chatsio_refused(self, error: ChatsioError) -> None:
        """Count a packet ``ChatsioServer`` refused as this namespace counts
        its errors."""
        metrics = self.chatsio_metrics
        metrics.child(metrics.errors, error.code, "socket").inc()

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        connection = self.chatsio_connections.pop(sid, None)
        user = connection.user if connection else None
        if connection:
            self.chatsio_allowances.close(connection.user, connection.bucket)
            self.chatsio_metrics.sockets.labels(self.namespace).dec()
            if connection.expiry:
                connection.expiry.cancel()
        logger.info(
            "disconnect %s sid=%s user=%s reason=%s", self.namespace, sid, user, reason
        )

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, payloads = args[0], args[1:]
        handler = getattr(self, f"on_{event}", None)
        started = time.perf_counter()
        reply = await self._chatsio_dispatch(handler, event, sid, payloads)
        # Label by handler name only: clients choose event names, not metrics.
        label = event if handler else "unknown"
        outcome = "ok" if reply["ok"] else reply["error"]["code"]
        self.chatsio_metrics.handled(
            self.namespace, label, outcome, time.perf_counter() - started
        )
        return reply

    def _chatsio_strike(self, sid: str, connection: Connection) -> None:
        """Count a refused event; a connection that will not slow down goes."""
        connection.strikes += 1
        if connection.strikes == self.chatsio_allowance.flood_strikes:
            self.chatsio_allowances.bar(connection.user)
            self.server.start_background_task(
                self._chatsio_drop, sid, "kept flooding after rate_limited answers"
            )

    async def _chatsio_dispatch(
        self, handler: Any, event: str, sid: str, payloads: tuple
    ) -> dict:
        """Run one event's handler; every outcome becomes one ack."""
        connection = self.chatsio_connections.get(sid)
        try:
            if connection is None:
                raise Unauthorized("not connected")
            if not connection.bucket.take():
                self._chatsio_strike(sid, connection)
                raise RateLimited("over the allowance of events per second")
            connection.strikes = 0
            if handler is None:
                raise InvalidPayload(f"unknown event {event!r}")
            if len(payloads) != 1:
                raise InvalidPayload(
                    "expected one payload object", fields={"_schema": ["one object"]}
                )
            return ok(**await handler(sid, connection.user, payloads[0]))
        except ChatsioError as exc:
            if not (connection and connection.strikes > 1):  # one line per flood
                log_error(self.namespace, event, sid, connection, exc)
            return failure(exc)
        except Exception:
            logger.exception(
                "%s %s failed: sid=%s user=%s",
                self.namespace,
                event,
                sid,
                connection and connection.user,
            )
            return failure(InternalFault())


def log_error(
    namespace: str,
    event: str,
    sid: str,
    connection: Connection | None,
    exc: ChatsioError,
) -> None:
    logger.info(
        "%s %s -> %s: %s sid=%s user=%s",
        namespace,
        event,
        exc.code,
        exc.message,
        sid,
        connection and connection.user,
    )


async def check_accounts(namespaces: list[BaseNamespace], every: float) -> None:
    """Every ``every`` seconds, drop sockets of deleted accounts (see
    ``BaseNamespace.chatsio_drop_stale_accounts``); a failed check is tried again."""
    while True:
        await asyncio.sleep(every)
        for namespace in namespaces:
            try:
                await namespace.chatsio_drop_stale_accounts()
            except Exception as exc:  # the database down: tried again next round
                logger.warning(
                    "checking %s's accounts failed: %r", namespace.namespace, exc
                )
