"""Micro-benchmark of the message store and the post path, without a server.

Times N appends one after another and in waves of 500 concurrent ones, through
``MessageStore.append`` and through ``MessageService.post`` (a do-nothing
emitter), on a fresh SQLite file and a fresh PostgreSQL database. Prints
microseconds per message. Not a pass/fail run.

    .venv/bin/python bench/storage_micro.py [--n 2000] [--postgres URL|none]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from chatsio.config import Config, database_url
from chatsio.metrics import Metrics
from chatsio.protocol import KIND_MESSAGE, now_ms
from chatsio.services.allowance import MessageAllowance
from chatsio.services.chats import ChatService
from chatsio.services.messages import MessageService
from chatsio.services.presence import LocalDirectory, PresenceService
from chatsio.storage import Storage, open_storage

WAVE = 500
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
SENDERS = 50


class Silent:
    async def emit(self, *args, **kwargs) -> None:
        pass

    async def close_room(self, *args, **kwargs) -> None:
        pass


async def setup(storage: Storage) -> list[tuple[str, str]]:
    """SENDERS users, each in a chat with the next one: (sender, chat id) pairs."""
    names = [f"u{i}" for i in range(SENDERS)]
    for name in names:
        await storage.users.create(name, "x", is_admin=False, now=now_ms())
    pairs = []
    for i, name in enumerate(names):
        chat_id = str(uuid.uuid4())
        other = names[(i + 1) % SENDERS]
        await storage.chats.create(chat_id, None, name, [name, other], now_ms())
        pairs.append((name, chat_id))
    return pairs


def store_send(storage: Storage):
    async def send(sender: str, chat_id: str, i: int) -> None:
        message, created = await storage.messages.append(
            chat_id,
            kind=KIND_MESSAGE,
            text=f"message {i}",
            sender=sender,
            client_id=f"c{i}",
            now=now_ms(),
        )
        assert created, message

    return send


def service_send(storage: Storage):
    metrics = Metrics()
    config = Config()
    chats = ChatService(
        storage,
        Silent(),
        metrics,
        PresenceService(
            storage, Silent(), LocalDirectory(), grace=config.presence_grace
        ),
        chats_per_minute=config.chats_per_minute,
        invites_per_minute=config.invites_per_minute,
    )
    service = MessageService(
        storage,
        Silent(),
        chats,
        metrics,
        allowance=MessageAllowance(rate=1e9, burst=10**9),  # measured, never hit
        max_file_bytes=config.max_file_bytes,
        file_quota_bytes=config.file_quota_bytes,
    )

    async def send(sender: str, chat_id: str, i: int) -> None:
        await service.post(sender, chat_id, f"message {i}", f"s{i}", origin=None)

    return send


async def timed(send, pairs, n: int, concurrent: bool) -> tuple[float, float]:
    """Wall and CPU (every thread of the process) microseconds per message."""
    started, cpu = time.perf_counter(), time.process_time()
    if concurrent:
        for start in range(0, n, WAVE):
            wave = range(start, min(n, start + WAVE))
            await asyncio.gather(*(send(*pairs[i % SENDERS], i) for i in wave))
    else:
        for i in range(n):
            await send(*pairs[i % SENDERS], i)
    wall = (time.perf_counter() - started) / n * 1e6
    return wall, (time.process_time() - cpu) / n * 1e6


async def run(url: str, label: str, n: int) -> None:
    storage = await open_storage(url)
    try:
        pairs = await setup(storage)
        counter = iter(range(10**9))  # every client_id in the run is new
        for path, make in (("store", store_send), ("service", service_send)):
            send = make(storage)
            for concurrent in (False, True):

                async def fresh(sender, chat_id, _i, send=send):
                    await send(sender, chat_id, next(counter))

                await timed(fresh, pairs, min(n, 200), concurrent)  # warm up
                wall, cpu = await timed(fresh, pairs, n, concurrent)
                mode = f"{WAVE} concurrent" if concurrent else "sequential"
                print(
                    f"{label:8} {path:8} {mode:15} wall {wall:7.1f}"
                    f"  cpu {cpu:7.1f} us/message"
                )
    finally:
        await storage.close()


async def on_each_database(run, postgres: str) -> None:
    """``await run(url, label)`` on a fresh SQLite file, then (unless
    ``postgres`` is "none") on a fresh database of that PostgreSQL server."""
    with tempfile.TemporaryDirectory() as work:
        await run(database_url(f"sqlite:///{Path(work) / 'bench.db'}"), "sqlite")
    if postgres != "none":
        name = f"chatsio_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(postgres)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            base = postgres.rsplit("/", 1)[0]
            await run(database_url(f"{base}/{name}"), "postgres")
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    await on_each_database(lambda url, label: run(url, label, args.n), args.postgres)


if __name__ == "__main__":
    asyncio.run(main())
