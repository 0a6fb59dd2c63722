"""The composition root: ``create_app(config)`` builds and wires everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from chatsio.api import (
    chats,
    files,
    health,
    identity,
    metrics,
    notifications,
    openapi,
    pages,
    presence,
)
from chatsio.api.connections import ConnectionGuard, guard_connections
from chatsio.api.cors import setup_cors
from chatsio.api.errors import error_middleware, log_malformed_requests_as_info
from chatsio.api.forwarded import forwarded_for
from chatsio.api.headers import add_security_headers
from chatsio.api.keys import config_key, metrics_key, services_key
from chatsio.config import Config
from chatsio.metrics import Metrics
from chatsio.protocol import CHAT, CONTROL, KIND_NOTIFICATION, NOTIFY, iso, now_ms
from chatsio.services import create_services
from chatsio.services.missed import MissedMessages
from chatsio.sockets.base import check_accounts
from chatsio.sockets.chat import ChatNamespace
from chatsio.sockets.control import ControlNamespace
from chatsio.sockets.emitter import MeteredEmitter
from chatsio.sockets.ratelimit import Allowance
from chatsio.storage import Storage, open_storage
from chatsio.transport import (
    AttachmentBudget,
    CatchUp,
    ChatsioPacket,
    ChatsioServer,
    ClusterFanout,
    DirectFanout,
    PresenceCatchUp,
    ReadCatchUp,
    RedisBus,
    RedisDirectory,
    abort_websocket,
)

logger = logging.getLogger(__name__)

SHUTDOWN_NOTICE_TIMEOUT = 3.0
# How often a node looks for sockets whose account has been deleted.
ACCOUNT_CHECK_EVERY = 10.0

sio_key = web.AppKey("sio", ChatsioServer)
storage_key = web.AppKey("storage", Storage)
connections_key = web.AppKey("connections", ConnectionGuard)


def create_sio(config: Config, guard: ConnectionGuard | None = None) -> ChatsioServer:
    manager = (
        ClusterFanout(
            RedisBus(
                config.redis_url,
                channel=config.redis_channel,
                verify_tls=config.redis_tls_verify,
            )
        )
        if config.redis_url
        else DirectFanout()
    )
    return ChatsioServer(
        async_mode="aiohttp",
        namespaces=[CONTROL, CHAT],  # no others, the default "/" included
        client_manager=manager,
        serializer=ChatsioPacket,  # orjson
        # None: same origin only. python-engineio checks Origin on both
        # transports and also accepts the X-Forwarded-Host a proxy sets.
        cors_allowed_origins=socket_origins(config.cors_origins),
        # Room for the largest file: a file over the limit must reach the
        # handler, to be answered too_large, instead of closing the connection.
        # Polling base64-encodes attachments, hence the 4/3.
        max_http_buffer_size=max(1_000_000, config.max_file_bytes * 4 // 3 + 65536),
        # Events of one connection run one after another, so a client's
        # messages are stored in the order it sent them.
        async_handlers=False,
        chatsio_ws_compression=config.ws_compression,  # passed on to ChatsioEngine
        chatsio_connection_guard=guard,  # so is this
        chatsio_attachments=AttachmentBudget(
            per_user=config.attachment_bytes_per_user,
            timeout=config.attachment_timeout,
        ),
        logger=False,
        engineio_logger=False,
    )


def create_app(config: Config) -> web.Application:
    log_malformed_requests_as_info()
    guard = ConnectionGuard(
        per_address=config.max_connections_per_address,
        min_rate=config.min_body_rate,
        grace=config.header_timeout,
        trusted=config.trusted_proxies,
    )
    middlewares = [guard.middleware, error_middleware]
    if config.trusted_proxies:
        middlewares.insert(0, forwarded_for(config.trusted_proxies))
    app = web.Application(
        middlewares=middlewares,
        # aiohttp closes a connection whose request headers are not all in
        # this long after it opened or after its last response: idle TCP,
        # half-sent or dripped headers, idle keep-alive. Here rather than in
        # run_app's arguments, so the test server gets it too.
        handler_args={"keepalive_timeout": config.header_timeout},
    )
    guard_connections(app, guard)
    app[connections_key] = guard
    app[config_key] = config
    app[metrics_key] = Metrics()
    sio = create_sio(config, guard)
    app[sio_key] = sio
    sio.attach(app)
    for module in (
        identity,
        chats,
        files,
        notifications,
        presence,
        health,
        metrics,
        openapi,
        pages,
    ):
        app.add_routes(module.routes)
    setup_cors(app, config.cors_origins)
    app.on_response_prepare.append(add_security_headers)
    app.cleanup_ctx.append(services_ctx)
    app.on_shutdown.append(close_sockets)
    return app


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the database, build the services and mount the namespaces on them."""
    config, sio, metrics = app[config_key], app[sio_key], app[metrics_key]
    storage = await open_storage(config.database_url)
    app[storage_key] = storage
    cluster = sio.manager if isinstance(sio.manager, ClusterFanout) else None
    services = await create_services(
        storage,
        MeteredEmitter(sio, metrics, cluster.chatsio_ledger if cluster else None),
        config,
        metrics,
        redis_probe=cluster.chatsio_bus.probe if cluster else None,
        presence_directory=(
            RedisDirectory(cluster.chatsio_bus.target, cluster.chatsio_bus.channel)
            if cluster
            else None
        ),
    )
    app[services_key] = services
    allowance = Allowance(
        config.rate_limit,
        config.rate_burst,
        connections_per_user=config.max_connections_per_user,
    )
    namespaces = [
        handler(namespace, services, allowance, metrics)
        for namespace, handler in ((CONTROL, ControlNamespace), (CHAT, ChatNamespace))
    ]
    for namespace in namespaces:
        sio.register_namespace(namespace)
    await services.presence.start()
    account_checks = asyncio.create_task(
        check_accounts(namespaces, ACCOUNT_CHECK_EVERY)
    )
    logger.info("database ready: %s", storage.engine.url.render_as_string())
    if cluster:
        metrics.count_bus(cluster.chatsio_bus.received)
        catch_up = CatchUp(
            cluster,
            MissedMessages(storage),
            ReadCatchUp(cluster, services.reads),
            services.chats,
        )
        presence_catch_up = PresenceCatchUp(cluster, services.presence)

        def bus_recovered(since: int) -> None:  # what crossed since may be lost
            catch_up.schedule(since)
            presence_catch_up.schedule()

        await cluster.chatsio_start(bus_recovered, within=2.0)
    yield
    account_checks.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await account_checks
    await services.presence.aclose()  # while the database and the bus are open
    if cluster:
        await catch_up.aclose()
        await presence_catch_up.aclose()
        await cluster.chatsio_bus.aclose()
    services.identity.close()  # the password hashing threads
    await storage.close()


async def close_sockets(app: web.Application) -> None:
    """On shutdown: tell this node's sockets, then close them.

    Runs after the listener stopped accepting and before the handlers are
    cancelled, so clients hear why they are being disconnected and reconnect
    (to another node, behind a balancer). Bounded: a client that does not read
    (a stalled polling session) cannot hold the shutdown.
    """
    sio = app[sio_key]
    notice = {
        "kind": KIND_NOTIFICATION,
        "text": "this server is restarting; reconnecting",
        "id": None,
        "ts": iso(now_ms()),
    }
    sockets = list(sio.eio.sockets.values())
    with contextlib.suppress(Exception):
        async with asyncio.timeout(SHUTDOWN_NOTICE_TIMEOUT):
            await sio.emit(NOTIFY, notice, namespace=CONTROL, ignore_queue=True)
            if sockets:
                await sio.eio.disconnect()  # sends each client its CLOSE packet
    # A WebSocket stays open until its client closes it, which clients do not
    # do on a CLOSE packet; end them, now that the notice and CLOSE went out.
    for socket in sockets:
        abort_websocket(socket)
    await sio.shutdown()


def socket_origins(origins: tuple[str, ...]) -> list[str] | str | None:
    if "*" in origins:
        return "*"
    return list(origins) or None
