"""Churn: 10,000 cycles of connect -> join -> send -> disconnect.

Each cycle is a new ``socketio.AsyncClient`` that connects ``/control`` and
``/chat`` over WebSocket, waits for ``welcome``, joins its chat, sends one
message (acked ok), and disconnects; 50 cycles run at a time.

Pass, once every client has gone: ``chatsio_connected_sockets`` is 0 on both
namespaces, the server's open file descriptors are back to the start +-10, its
RSS is within 5 % of the start, and every cycle completed. "The start" is
measured after a warm-up of 200 cycles, since the first connections fill
caches (imports, marshmallow and SQLAlchemy compiled statements, allocator
arenas). With ``--inspect``, also: no Engine.IO session, connection entry or
room membership is left in the server.

    .venv/bin/python bench/churn.py
    .venv/bin/python bench/churn.py --cycles 2000 --inspect
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter

import socketio
from accounts import create_chats, start_with_users, user_names
from common import (
    NAMESPACES,
    Workdir,
    add_server_options,
    counter_sum,
    describe_machine,
    make_server,
    run,
)
from fleet import Fleet
from measure import CpuMeter, Sample, Sampler, Verdict, latency_line, memory_map

STEP_TIMEOUT = 15.0
FD_SLACK = 10
RSS_SLACK = 5.0  # %
# Seconds of quiet before measuring. python-engineio keeps each socket's ping
# task (and through it the socket) for one ping interval, 25 s, after the
# socket closed; measuring earlier counts those as if they leaked.
SETTLE = 30.0
STEPS = ("connect", "welcome", "join", "send", "disconnect")


class Churners:
    """A worker process running cycles (see fleet.py for the command loop)."""

    def __init__(self, index: int, count: int) -> None:
        self.index = index
        self.count = count

    async def do_cycles(
        self, url: str, members: list, first: int, count: int, concurrency: int
    ) -> dict:
        mine = iter(
            n for n in range(first, first + count) if n % self.count == self.index
        )
        timings: dict[str, list[float]] = {step: [] for step in (*STEPS, "cycle")}
        failures: Counter[str] = Counter()
        examples: list[str] = []
        cpu, wall = time.process_time(), time.monotonic()

        async def runner() -> None:
            for number in mine:
                member = members[number % len(members)]
                error = await self.cycle(url, member, number, timings)
                if error:
                    failures[error.split(":")[0]] += 1
                    if len(examples) < 10:
                        examples.append(error)

        await asyncio.gather(*(runner() for _ in range(concurrency)))
        return {
            "done": len(timings["cycle"]),
            "failures": dict(failures),
            "examples": examples,
            "timings": timings,
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.monotonic() - wall,
        }

    async def cycle(
        self, url: str, member: tuple, number: int, timings: dict
    ) -> str | None:
        """One connect -> join -> send -> disconnect; an error text, or None."""
        name, token, chat_id = member
        client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        welcome = asyncio.Event()
        client.on("welcome", lambda _: welcome.set(), namespace="/control")
        step = "connect"
        started = mark = time.monotonic()
        try:
            async with asyncio.timeout(STEP_TIMEOUT * len(STEPS)):
                await client.connect(
                    url,
                    auth={"token": token},
                    namespaces=list(NAMESPACES),
                    transports=["websocket"],
                    wait_timeout=STEP_TIMEOUT,
                )
                mark = lap(timings, step, mark)
                step = "welcome"
                await asyncio.wait_for(welcome.wait(), STEP_TIMEOUT)
                mark = lap(timings, step, mark)
                step = "join"
                await call(client, "join", {"id": chat_id})
                mark = lap(timings, step, mark)
                step = "send"
                text = f"churn {name} cycle {number}"
                await call(
                    client, "notify", {"id": chat_id, "kind": "message", "text": text}
                )
                mark = lap(timings, step, mark)
                step = "disconnect"
                await client.disconnect()
                lap(timings, step, mark)
        except Exception as exc:
            await abandon(client)
            return f"{step}: {exc!r}"[:300]
        timings["cycle"].append(time.monotonic() - started)
        return None

    async def close(self) -> None:
        pass


def lap(timings: dict, step: str, mark: float) -> float:
    now = time.monotonic()
    timings[step].append(now - mark)
    return now


async def call(client: socketio.AsyncClient, event: str, payload: dict) -> None:
    reply = await client.call(event, payload, namespace="/chat", timeout=STEP_TIMEOUT)
    if not reply.get("ok"):
        raise RuntimeError(f"{event} answered {reply}")


async def abandon(client: socketio.AsyncClient) -> None:
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            await client.disconnect()
    except Exception:
        pass


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=200, help="cycles")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-chat", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE,
        help="s of quiet before each measurement (default 30: ping interval + 5)",
    )
    add_server_options(parser)
    return parser.parse_args()


async def main(args: argparse.Namespace) -> int:
    describe_machine()
    with Workdir("churn", args.keep) as workdir:
        server = make_server(args, workdir)
        fleet = Fleet(Churners, args.workers)
        try:
            return await churn(args, server, fleet)
        finally:
            fleet.close()
            code = server.stop()
            print(f"server stopped (exit code {code}); log: {server.log}")


async def churn(args, server, fleet) -> int:
    names = user_names(args.users)
    tokens = await start_with_users(server, names, args.users_via)
    groups = [names[i : i + args.per_chat] for i in range(0, len(names), args.per_chat)]
    chat_ids = await create_chats(server.url, groups, tokens)
    members = [
        (name, tokens[name], chat_id)
        for chat_id, group in zip(chat_ids, groups, strict=True)
        for name in group
    ]
    fleet.start()
    sampler = Sampler(server)
    fresh = await settled(server, sampler, "fresh server", 1.0)
    warm = await phase(args, server, fleet, members, 0, args.warmup, "warm-up")
    start = await settled(server, sampler, "start (after warm-up)", args.settle)
    before = await server.metrics()
    if args.inspect:
        print("server internals at the start:", await server.internals())
        live = await server.internals(collect=True, trace=True)
        print(
            f"live objects at the start (after a full gc.collect()): "
            f"{live['gc_objects']}, top {live['top_types'][:10]}"
        )
    sampler.start()
    result = await phase(
        args, server, fleet, members, args.warmup, args.cycles, "churn"
    )
    await sampler.stop()
    during = [s for s in sampler.samples if s.t > start.t]
    print(
        "RSS MiB every 10 s during the churn: "
        + " ".join(f"{s.rss_kib / 1024:.0f}" for s in during[::2])
    )
    print(
        f"during the churn: RSS {min(s.rss_kib for s in during) / 1024:.1f}.."
        f"{max(s.rss_kib for s in during) / 1024:.1f} MiB, fds "
        f"{min(s.fds for s in during)}..{max(s.fds for s in during)}"
    )
    left, waited = await server.wait_no_sockets()
    print(f"sockets after the last cycle: {left}, {waited:.1f} s to reach it")
    end = await settled(server, sampler, "end", args.settle)
    after = await server.metrics()
    internals = None
    if args.inspect:
        internals = await server.internals()
        collected = await server.internals(collect=True)
        print(
            f"after a full gc.collect() in the server: RSS "
            f"{server.rss_kib() / 1024:.1f} MiB, objects {collected['gc_objects']} "
            f"(before it {internals['gc_objects']}); it found "
            f"{collected['gc_unreachable']} unreachable objects, most: "
            f"{collected['gc_garbage_types']}"
        )
        print(f"live objects at the end: top {collected['top_types'][:10]}")
        trimmed = await server.internals(trim=True, trace=True)
        print(
            f"after malloc_trim(0) in the server: RSS {server.rss_kib() / 1024:.1f} MiB"
        )
        if trimmed["tracemalloc"]:
            print("tracemalloc, growth since the start:")
            for stat in trimmed["tracemalloc"].get("growth", []):
                print(f"  {stat['kib']:+9.1f} KiB {stat['count']:+7d}  {stat['where']}")
    return report(
        args, fresh, warm, start, end, result, left, (before, after), internals
    )


async def phase(args, server, fleet, members, first, count, label) -> dict:
    per_worker = math.ceil(args.concurrency / fleet.count)
    cpu = CpuMeter({"server": server.pid, **fleet.pids})
    cpu.start()
    started = time.monotonic()
    replies = await fleet.ask(
        "cycles",
        {
            "url": server.url,
            "members": members,
            "first": first,
            "count": count,
            "concurrency": per_worker,
        },
        within=max(600, count * 0.5),
    )
    wall = time.monotonic() - started
    usage = cpu.percent()
    done = sum(reply["done"] for reply in replies)
    failures: Counter[str] = Counter()
    for reply in replies:
        failures.update(reply["failures"])
    print(
        f"{label}: {done}/{count} cycles in {wall:.1f} s ({done / wall:.0f}/s), "
        f"failures {dict(failures) or 'none'}; CPU "
        + ", ".join(f"{name} {value:.0f}%" for name, value in usage.items())
    )
    for reply in replies:
        for example in reply["examples"][:3]:
            print("   ", example)
    timings = {
        step: [v for reply in replies for v in reply["timings"][step]]
        for step in (*STEPS, "cycle")
    }
    return {"done": done, "count": count, "failures": failures, "timings": timings}


async def settled(server, sampler: Sampler, label: str, quiet: float) -> Sample:
    """Wait for no sockets and a quiet spell; then measure (3 readings, 1 s apart)."""
    await server.wait_no_sockets()
    await asyncio.sleep(quiet)
    readings = []
    for _ in range(3):
        readings.append(await sampler.take())
        await asyncio.sleep(1.0)
    last = readings[-1]
    print(
        f"{label}: RSS {last.rss_kib / 1024:.1f} MiB "
        f"(readings {', '.join(f'{r.rss_kib / 1024:.1f}' for r in readings)}), "
        f"fds {last.fds}, sockets {last.sockets}"
    )
    kinds = memory_map(server.pid)
    print(
        "  resident MiB by mapping: "
        + ", ".join(
            f"{kind} {kib / 1024:.1f}"
            for kind, kib in sorted(kinds.items())
            if kib >= 512
        )
    )
    return last


def report(args, fresh, warm, start, end, result, left, metrics, internals) -> int:
    before, after = metrics
    for step in (*STEPS, "cycle"):
        text, _ = latency_line(result["timings"][step])
        print(f"  {step:>10}: {text}")
    stored = counter_sum(after, "chatsio_messages_stored_total") - counter_sum(
        before, "chatsio_messages_stored_total"
    )
    print(f"messages stored by the server during the churn: {stored:.0f}")
    rss_change = 100 * (end.rss_kib - start.rss_kib) / start.rss_kib
    print(
        f"RSS: fresh {fresh.rss_kib / 1024:.1f} MiB, start {start.rss_kib / 1024:.1f}"
        f" MiB, end {end.rss_kib / 1024:.1f} MiB ({rss_change:+.2f} % of the start)"
        f"; fds: fresh {fresh.fds}, start {start.fds}, end {end.fds}"
    )
    verdict = Verdict()
    verdict.check(
        f"all {args.cycles} cycles completed",
        f"{result['done']}, failures {dict(result['failures']) or 'none'}",
        result["done"] == result["count"],
    )
    verdict.check("no sockets left (/metrics)", str(left), not any(left.values()))
    verdict.check(
        f"fds back to the start +-{FD_SLACK}",
        f"{start.fds} -> {end.fds}",
        abs(end.fds - start.fds) <= FD_SLACK,
    )
    verdict.check(
        f"RSS within {RSS_SLACK:g} % of the start",
        f"{start.rss_kib / 1024:.1f} -> {end.rss_kib / 1024:.1f} MiB "
        f"({rss_change:+.2f} %)",
        abs(rss_change) <= RSS_SLACK,
    )
    if internals is not None:
        print("server internals:", internals)
        held = {
            "engineio sessions": internals["engineio_sessions"],
            "environ": internals["environ"],
            "connections": sum(internals["connections"].values()),
            "room memberships": sum(
                r["memberships"] for r in internals["rooms"].values()
            ),
            "rooms": sum(r["rooms"] for r in internals["rooms"].values()),
            "ack callbacks": internals["callbacks"],
        }
        verdict.check(
            "no sessions, connections or rooms left (--inspect)",
            str(held),
            not any(held.values()),
        )
    return verdict.report()


if __name__ == "__main__":
    arguments = parse()
    budget = 900 + (arguments.cycles + arguments.warmup) * 0.2
    raise SystemExit(run(main, arguments, budget))
