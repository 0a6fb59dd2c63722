"""The users and chats of a run: registered quickly, their tokens signed by
the server's key, their chats started over REST."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

import aiohttp
from common import HTTP_TIMEOUT, PASSWORD, Server


def user_names(count: int, prefix: str = "") -> list[str]:
    """``count`` user names with a random run prefix (at most 32 characters)."""
    run = prefix or secrets.token_hex(3)
    return [f"b{run}_{index:05d}" for index in range(count)]


async def seed_users(server: Server, names: Sequence[str]) -> dict[str, str]:
    """Write users into the database and sign their tokens: ``chatsio
    createuser`` in bulk. One Argon2 hash serves all (they share the password),
    and the tokens come from the same Identity.issue the server uses, with the
    key the server will read from the database (or CHATSIO_SECRET)."""
    from chatsio.config import load_config
    from chatsio.protocol import now_ms
    from chatsio.services import create_identity
    from chatsio.storage import open_storage

    config = load_config(server.env)
    storage = await open_storage(config.database_url)
    try:
        identity = await create_identity(storage, config)
        password_hash = await asyncio.to_thread(identity.hasher.hash, PASSWORD)
        tokens = {}
        for name in names:
            user = await storage.users.create(
                name, password_hash, is_admin=False, now=now_ms()
            )
            tokens[name] = identity.issue(user).token
        return tokens
    finally:
        await storage.close()


async def register_users(
    url: str, names: Sequence[str], concurrency: int = 4
) -> dict[str, str]:
    """Register through POST /api/users and log in through POST /api/tokens."""
    limit = asyncio.Semaphore(concurrency)
    tokens: dict[str, str] = {}

    async def one(http: aiohttp.ClientSession, name: str) -> None:
        credentials = {"username": name, "password": PASSWORD}
        async with limit:
            async with http.post(url + "/api/users", json=credentials) as response:
                if response.status != 201:
                    raise RuntimeError(f"register {name}: {await response.text()}")
            async with http.post(url + "/api/tokens", json=credentials) as response:
                tokens[name] = (await response.json())["token"]

    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        await asyncio.gather(*(one(http, name) for name in names))
    return tokens


async def start_with_users(
    server: Server, names: Sequence[str], via: str
) -> dict[str, str]:
    """Start the server with ``names`` registered; their tokens.

    Seeded users are checked through the real API: one logs in with the
    password (the shared hash verifies) and one token is accepted by /api/me.
    """
    started = time.monotonic()
    if via == "seed":
        tokens = await seed_users(server, names)
    server.start()
    await server.wait_healthy()
    if via == "rest":
        tokens = await register_users(server.url, names)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        name = names[-1]
        credentials = {"username": name, "password": PASSWORD}
        async with http.post(server.url + "/api/tokens", json=credentials) as reply:
            if reply.status != 200:
                raise RuntimeError(f"log-in as {name}: {await reply.text()}")
        headers = {"Authorization": f"Bearer {tokens[names[0]]}"}
        async with http.get(server.url + "/api/me", headers=headers) as reply:
            me = await reply.json()
            if reply.status != 200 or me.get("username") != names[0]:
                raise RuntimeError(f"/api/me with a bench token: {me}")
    print(
        f"users: {len(names)} via {via} in {time.monotonic() - started:.1f} s "
        f"(server start included)"
    )
    return tokens


async def create_chats(
    url: str, groups: Sequence[Sequence[str]], tokens: dict[str, str]
) -> list[str]:
    """One chat per group, started over REST by its first member; their ids."""
    limit = asyncio.Semaphore(8)

    async def one(http: aiohttp.ClientSession, index: int, group) -> str:
        headers = {"Authorization": f"Bearer {tokens[group[0]]}"}
        body = {"members": list(group[1:]), "title": f"bench {index}"}
        async with limit:
            async with http.post(
                url + "/api/chats", json=body, headers=headers
            ) as response:
                chat = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"start chat {index}: {chat}")
                return chat["id"]

    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        return list(
            await asyncio.gather(
                *(one(http, index, group) for index, group in enumerate(groups))
            )
        )
