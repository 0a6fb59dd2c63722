"""Command line: ``chatsio serve`` and ``chatsio createuser``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from chatsio.app import create_app
from chatsio.config import LOG_LEVELS, Config, load_config, logging_level
from chatsio.errors import ChatsioError, ConfigError
from chatsio.schemas import credentials_in, load
from chatsio.services import create_identity
from chatsio.storage import open_storage

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chatsio", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the chat server")
    serve.add_argument("--host", help="address to listen on (HOST)")
    serve.add_argument("--port", help="port to listen on (PORT, default 8080)")
    serve.add_argument("--database-url", help="database URL (DATABASE_URL)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, help="(CHATSIO_LOG_LEVEL)")

    createuser = commands.add_parser("createuser", help="add a user")
    createuser.add_argument("name")
    createuser.add_argument("--password", required=True)
    createuser.add_argument("--admin", action="store_true", help="may send notices")
    createuser.add_argument("--database-url", help="database URL (DATABASE_URL)")
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
    logging.basicConfig(level=logging_level(config), format=LOG_FORMAT)
    if args.command == "serve":
        return serve(config)
    return asyncio.run(create_user(config, args.name, args.password, args.admin))


def serve(config: Config) -> int:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        print=lambda text: logging.getLogger("chatsio").info(text.strip()),
    )
    return 0


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
