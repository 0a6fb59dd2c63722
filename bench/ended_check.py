"""What refusing ended chats costs (issue 18, item 6): microseconds per event.

Messages: the append statement is conditioned on the chat being active
(``AND chats.active``, in the statement that takes the seq); timed as it is
and with that condition cut out of the compiled SQL, one message after another
and in waves of 500 concurrent ones, through ``MessageStore.append``; the
two take turns going first, as the tables grow and the WAL is checkpointed.

Typing: ``MessageService.typing`` from a joined socket (a do-nothing emitter)
as before the check (the room trusted for ever), as it is (the room trusted
for ``ACTIVE_TTL`` after the chat was last seen active, then one read), and
with a read of the database every time.

Each on a fresh SQLite file and a fresh PostgreSQL database, variants
interleaved, ``--repeats`` times. Not a pass/fail run.

    .venv/bin/python bench/ended_check.py [--n 2000] [--repeats 3]
                                          [--postgres URL|none]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import statistics
import time

from storage_micro import (
    POSTGRES,
    SENDERS,
    Silent,
    on_each_database,
    setup,
    store_send,
    timed,
)

from chatsio.config import Config
from chatsio.metrics import Metrics
from chatsio.services import create_services
from chatsio.services.activity import ACTIVE_TTL, ActiveChats
from chatsio.storage import Storage, open_storage

ACTIVE_CONDITION = re.compile(r" AND chats\.active( = 1)?")


def message_variants(storage: Storage):
    """Set the append statement as it is ('checked') or without the active
    condition ('unchecked'), by name."""
    statement = storage.messages.writer.statements.by_member
    checked = statement.sql
    unchecked, cut = ACTIVE_CONDITION.subn("", checked)
    assert cut == 1, checked
    sql = {"checked": checked, "unchecked": unchecked}

    def use(name: str) -> None:
        statement.sql = sql[name]

    return use


async def time_messages(storage: Storage, pairs, n: int, repeats: int, label: str):
    use = message_variants(storage)
    send = store_send(storage)
    counter = iter(range(10**9))  # every client_id in the run is new

    async def fresh(sender, chat_id, _i):
        await send(sender, chat_id, next(counter))

    for concurrent in (False, True):
        walls: dict[str, list[float]] = {"unchecked": [], "checked": []}
        for repeat in range(repeats):
            names = list(walls)
            for name in names if repeat % 2 == 0 else reversed(names):
                use(name)
                await timed(fresh, pairs, min(n, 200), concurrent)  # warm up
                wall, _ = await timed(fresh, pairs, n, concurrent)
                walls[name].append(wall)
        mode = "500 concurrent" if concurrent else "sequential"
        report(label, f"message {mode}", walls)
    use("checked")


async def time_typing(storage: Storage, pairs, n: int, repeats: int, label: str):
    services = await create_services(storage, Silent(), Config(), Metrics())
    messages = services.messages
    ttls = {"trusted": math.inf, "cached": ACTIVE_TTL, "read": 0.0}
    walls: dict[str, list[float]] = {name: [] for name in ttls}

    async def typing(sender: str, chat_id: str, _i: int) -> None:
        await messages.typing(sender, chat_id, None, joined=True)

    for _ in range(repeats):
        for name, ttl in ttls.items():
            messages.active = ActiveChats(ttl=ttl)
            await timed(typing, pairs, min(n, 200), False)  # warm up
            wall, _ = await timed(typing, pairs, n, False)
            walls[name].append(wall)
    report(label, "typing sequential", walls)


def report(label: str, what: str, walls: dict[str, list[float]]) -> None:
    for name, values in walls.items():
        runs = " ".join(f"{v:7.1f}" for v in values)
        print(
            f"{label:8} {what:26} {name:9} {runs}"
            f"  median {statistics.median(values):7.1f} us/event",
            flush=True,
        )


async def run(url: str, label: str, n: int, repeats: int) -> None:
    storage = await open_storage(url)
    try:
        pairs = await setup(storage)
        assert len(pairs) == SENDERS
        await time_messages(storage, pairs, n, repeats, label)
        await time_typing(storage, pairs, n, repeats, label)
    finally:
        await storage.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  n={args.n}  repeats={args.repeats}")
    await on_each_database(
        lambda url, label: run(url, label, args.n, args.repeats), args.postgres
    )


if __name__ == "__main__":
    asyncio.run(main())
