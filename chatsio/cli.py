"""Command line: ``chatsio serve``, ``createuser``, ``deleteuser``, ``notify``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

import uvloop
from aiohttp import web

from chatsio.app import create_app
from chatsio.config import LOG_LEVELS, Config, load_config, logging_level
from chatsio.errors import ChatsioError, ConfigError
from chatsio.logs import setup_logging
from chatsio.metrics import Metrics
from chatsio.schemas import credentials_in, load, notification_in
from chatsio.services import create_identity, create_services
from chatsio.services.accounts import delete_user
from chatsio.services.notifications import broadcast
from chatsio.sockets.bus import RedisBus
from chatsio.storage import open_storage

# Allocations (net of frees) between two young-generation collections; the
# interpreter's default is 700. See ``settle_gc``.
GC_YOUNG_THRESHOLD = 2_000


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chatsio", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the chat server")
    serve.add_argument("--host", help="address to listen on (HOST)")
    serve.add_argument("--port", help="port to listen on (PORT, default 8080)")
    serve.add_argument("--database-url", help="database URL (DATABASE_URL)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, help="(CHATSIO_LOG_LEVEL)")

    notify = commands.add_parser(
        "notify", help="send a system notification through Redis (REDIS_URL)"
    )
    notify.add_argument("text")
    notify.add_argument("--chat", help="store it in this chat (needs DATABASE_URL)")
    notify.add_argument("--database-url", help="database URL (DATABASE_URL)")

    createuser = commands.add_parser("createuser", help="add a user")
    createuser.add_argument("name")
    createuser.add_argument("--password", required=True)
    createuser.add_argument("--admin", action="store_true", help="may send notices")
    createuser.add_argument("--database-url", help="database URL (DATABASE_URL)")

    deleteuser = commands.add_parser(
        "deleteuser", help="delete a user: their tokens and memberships go"
    )
    deleteuser.add_argument("name")
    deleteuser.add_argument("--database-url", help="database URL (DATABASE_URL)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config().with_overrides(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            database_url=args.database_url,
            log_level=getattr(args, "log_level", None),
        )
    except ConfigError as exc:
        print(f"chatsio: {exc}", file=sys.stderr)
        return 2
    setup_logging(logging_level(config))
    if args.command == "serve":
        return serve(config)
    if args.command == "notify":
        return asyncio.run(notify(config, args.text, args.chat))
    if args.command == "deleteuser":
        return asyncio.run(remove_user(config, args.name))
    return asyncio.run(create_user(config, args.name, args.password, args.admin))


def serve(config: Config) -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = create_app(config)
    app.on_startup.append(settle_gc)  # after chatsio's own start-up
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=lambda text: logging.getLogger("chatsio").info(text.strip()),
        # Past this, handlers still running (a stalled upload) are cancelled,
        # so SIGTERM always ends the process within about 10 s.
        shutdown_timeout=5.0,
        # uvloop: its transports and scheduling cost a fraction of asyncio's
        # per frame, which is most of the work of a chat fan-out.
        loop=uvloop.new_event_loop(),
    )
    return 0


async def settle_gc(_app: web.Application) -> None:
    """Tune the garbage collector for a long-running server, once started.

    What exists now (modules, the app, its engine) lives as long as the
    process: frozen, no collection walks it again. And a message's objects die
    by reference count, so the young generation is collected every
    GC_YOUNG_THRESHOLD allocations instead of 700. Measured at 13,500
    deliveries/s: the default collector ran ~10 times a second and made a full
    pass of ~150 ms every ~10 s, 3 % of the CPU and the worst latency of all.
    20,000 went too far: what closed connections leave in reference cycles
    waited longer, and bench/churn.py's RSS grew 8.4 % instead of 2.6 % (its
    limit is 5 %), for no CPU difference measurable at 9,000 or 27,000
    deliveries/s.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def create_user(config: Config, name: str, password: str, admin: bool) -> int:
    storage = await open_storage(config.database_url)
    try:
        load(credentials_in, {"username": name, "password": password})
        identity = await create_identity(storage, config)
        await identity.register(name, password, is_admin=admin, by_operator=True)
    except ChatsioError as exc:
        print(f"chatsio: {exc.message} {exc.fields or ''}".rstrip(), file=sys.stderr)
        return 1
    finally:
        await storage.close()
    print(f"created user {name}{' (admin)' if admin else ''}")
    return 0


async def remove_user(config: Config, name: str) -> int:
    storage = await open_storage(config.database_url)
    try:
        await delete_user(storage.users, name)
    except ChatsioError as exc:
        print(f"chatsio: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await storage.close()
    print(f"deleted user {name}")
    return 0


async def notify(config: Config, text: str, chat_id: str | None) -> int:
    """Publish a notice to every node's sockets; with a chat, store it there too."""
    if not config.redis_url:
        print("chatsio: REDIS_URL: required to reach the servers", file=sys.stderr)
        return 2
    try:
        request = load(notification_in, {"text": text, "id": chat_id})
    except ChatsioError as exc:
        print(f"chatsio: {exc.message} {exc.fields}", file=sys.stderr)
        return 2
    bus = RedisBus(config.redis_url, write_only=True)
    try:
        if request["id"] is None:
            await broadcast(bus, request["text"])
        else:
            await notify_chat(config, bus, request["id"], request["text"])
        if not await bus.flush(within=3.0):
            print("chatsio: could not reach Redis; nothing was sent", file=sys.stderr)
            return 1
    except ChatsioError as exc:
        print(f"chatsio: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await bus.aclose()
    print("sent")
    return 0


async def notify_chat(config: Config, bus: RedisBus, chat_id: str, text: str) -> None:
    storage = await open_storage(config.database_url)
    try:
        services = await create_services(storage, bus, config, Metrics())
        await services.notifications.to_chat(chat_id, text)
    finally:
        await storage.close()
