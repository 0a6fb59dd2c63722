"""Command line: ``chatsio serve``, ``createuser``, ``deleteuser``, ``notify``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import sys

import uvloop
from aiohttp import web

from chatsio.app import create_app, storage_key
from chatsio.arguments import parser
from chatsio.config import (
    Config,
    load_config,
    logging_level,
    without_password,
)
from chatsio.errors import ChatsioError, ConfigError
from chatsio.logs import setup_logging
from chatsio.metrics import Metrics
from chatsio.schemas import credentials_in, load, notification_in
from chatsio.services import create_identity, create_services
from chatsio.services.accounts import delete_user
from chatsio.services.notifications import broadcast
from chatsio.startup import (
    DATABASE_ERRORS,
    StartupFailure,
    check_sqlite_directory,
    database_failure,
    listen_sockets,
    open_database,
    shown_database,
)
from chatsio.transport import TLS_VERIFY_SETTING, BusEmitter, RedisBus

# Allocations (net of frees) between two young-generation collections; the
# interpreter's default is 700. See ``settle_gc``.
GC_YOUNG_THRESHOLD = 2_000


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config().with_overrides(
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            database_url=args.database_url,
            log_level=getattr(args, "log_level", None),
        )
        setup_logging(logging_level(config))
        return run(args, config)
    except (ConfigError, StartupFailure) as exc:
        print(f"chatsio: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, config: Config) -> int:
    if args.command == "serve":
        return serve(config)
    if args.command == "notify":
        return asyncio.run(notify(config, args.text, args.chat))
    if args.command == "deleteuser":
        return asyncio.run(remove_user(config, args.name))
    password = read_password(args.password)
    if password is None:
        print(
            "chatsio: the passwords did not match; nobody was created", file=sys.stderr
        )
        return 1
    return asyncio.run(create_user(config, args.name, password, args.admin))


def read_password(given: str | None) -> str | None:
    """--password, else asked twice on a terminal (None if the two differ),
    else the first line of standard input."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        try:
            first = getpass.getpass("Password: ")
            second = getpass.getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C
            raise StartupFailure("no password typed; nobody was created") from None
        return first if first == second else None
    line = sys.stdin.readline()
    if not line:
        raise StartupFailure(
            "no password: give --password, or one line on standard input"
        )
    return line.removesuffix("\n").removesuffix("\r")


def serve(config: Config) -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # A SQLite file's missing directory, a port in use or an unknown HOST
    # stops here, in one line, before the database is touched.
    check_sqlite_directory(config.database_url)
    sockets = listen_sockets(config.host, config.port)
    try:
        app = create_app(config)
        app.on_startup.append(settle_gc)  # after chatsio's own start-up
        try:
            web.run_app(
                app,
                sock=sockets,
                # Its first line; the second is "(Press CTRL+C to quit)".
                print=lambda text: logging.getLogger("chatsio").info(
                    text.strip().splitlines()[0]
                ),
                # Past this, handlers still running (a stalled upload) are
                # cancelled, so SIGTERM always ends the process within ~10 s.
                shutdown_timeout=5.0,
                # uvloop: its transports and scheduling cost a fraction of
                # asyncio's per frame, most of the work of a chat fan-out.
                loop=uvloop.new_event_loop(),
            )
        except DATABASE_ERRORS as exc:
            if storage_key in app:  # it opened: the fault lies elsewhere
                raise
            raise database_failure(config.database_url, exc) from exc
    finally:
        for sock in sockets:
            sock.close()
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
    try:
        load(credentials_in, {"username": name, "password": password})
    except ChatsioError as exc:  # before the database is touched
        print(f"chatsio: {described(exc)}", file=sys.stderr)
        return 1
    storage = await open_database(config.database_url)
    try:
        identity = await create_identity(storage, config)
        await identity.register(name, password, is_admin=admin, by_operator=True)
    except ChatsioError as exc:
        print(f"chatsio: {described(exc)}", file=sys.stderr)
        return 1
    finally:
        await storage.close()
    role = " (admin)" if admin else ""
    print(f"created user {name}{role} in {shown_database(config.database_url)}")
    return 0


async def remove_user(config: Config, name: str) -> int:
    storage = await open_database(config.database_url)
    try:
        await delete_user(storage.users, name)
    except ChatsioError as exc:
        print(f"chatsio: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await storage.close()
    print(f"deleted user {name} from {shown_database(config.database_url)}")
    return 0


def described(exc: ChatsioError, options: dict[str, str] | None = None) -> str:
    """The error in one line, each bad field under its command-line name."""
    if not exc.fields:
        return exc.message
    options = options or {}
    return "; ".join(
        f"{options.get(field, field)}: {' '.join(problems)}"
        for field, problems in exc.fields.items()
    )


async def notify(config: Config, text: str, chat_id: str | None) -> int:
    """Publish a notice to every node's sockets; with a chat, store it there too."""
    if not config.redis_url:
        print("chatsio: REDIS_URL: required to reach the servers", file=sys.stderr)
        return 2
    try:
        request = load(notification_in, {"text": text, "id": chat_id})
    except ChatsioError as exc:
        options = {"text": "TEXT", "id": "--chat"}
        print(f"chatsio: {described(exc, options)}", file=sys.stderr)
        return 2
    # The bus logs a fault as a server would ("this node keeps serving"); here
    # it is told once, in the one line below.
    logging.getLogger(RedisBus.__module__).setLevel(logging.CRITICAL)
    bus = RedisBus(
        config.redis_url,
        channel=config.redis_channel,
        verify_tls=config.redis_tls_verify,
    )
    try:
        if request["id"] is None:
            await broadcast(BusEmitter(bus), request["text"])
        elif problem := await notify_chat(config, bus, request["id"], request["text"]):
            print(f"chatsio: {problem}", file=sys.stderr)
            return 1
        if not await bus.flush(within=3.0):
            print(f"chatsio: {unreachable(config, bus)}", file=sys.stderr)
            return 1
    finally:
        await bus.aclose()
    print("sent")
    return 0


def unreachable(config: Config, bus: RedisBus) -> str:
    faults = "; ".join(dict.fromkeys(bus.faults.values())) or "no answer within 3 s"
    advice = "check REDIS_URL"
    if bus.certificate_reported:
        advice = f"set {TLS_VERIFY_SETTING}=false if its certificate is self-signed"
    return (
        f"could not reach Redis at {without_password(config.redis_url)} ({faults}); "
        f"nothing was sent; {advice}"
    )


async def notify_chat(
    config: Config, bus: RedisBus, chat_id: str, text: str
) -> str | None:
    """Store and send the notice in the chat; what went wrong, if anything."""
    storage = await open_database(config.database_url)
    try:
        services = await create_services(storage, BusEmitter(bus), config, Metrics())
        await services.notifications.to_chat(chat_id, text)
    except ChatsioError as exc:
        return f"{exc.message} ({chat_id} in {shown_database(config.database_url)})"
    finally:
        await storage.close()
    return None
