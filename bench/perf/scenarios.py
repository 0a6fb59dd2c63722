"""The servers compared and the four scenarios run against each.

A scenario starts a fresh server (or two), its clients in the Node
generator, measures, and stops them again. It returns flat metrics for the
final table, and prints a line per measurement as it goes.
"""

from __future__ import annotations

import math
import secrets
import sys
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from machine import ROOT, wait_quiet
from processes import (
    Generator,
    ServerProcess,
    chatsio_server,
    node_peer,
    python_peer,
)

sys.path.insert(0, str(ROOT / "bench"))
from accounts import create_chats, seed_users

ROOM_SIZE = 10
MAX_PER_CLIENT = 16.0  # msgs/s per socket: under chatsio's default 20/s
MIN_ROOMS = 50  # a step uses at least 500 clients
GENERATOR_CPU_LIMIT = 80.0  # % of its core: above it its own event loop queues,
# which shows as latency (measured: p99 > 100 ms at 88 % against an idle server)
LOOP_DELAY_LIMIT_MS = 20.0  # the generator's own event-loop delay, p99
LOOP_DELAY_SHARE = 0.25  # ... and at least this share of the latency p99
LOOP_BUSY_CPU = 50.0  # ... with its CPU at least this (% of its core); else
# the lag is other processes on its core: a busy machine, not the generator
PASS_DELIVERED = 0.999
PASS_P99_MS = 100.0
CPU_RATE = 9000.0  # deliveries/s of the CPU-per-delivery measurement
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Target:
    """A server compared: ``kind`` is chatsio, node or python."""

    key: str
    label: str
    kind: str
    database: str | None = None  # chatsio: "sqlite" or a PostgreSQL URL
    without: tuple[str, ...] = ()  # chatsio: transport pieces taken away
    source: Path | None = None  # chatsio: the checkout it runs from (--source)


@dataclass
class Deployment:
    servers: list[ServerProcess]
    clients: list[dict]
    create_chats: bool

    def cpu_seconds(self) -> list[float]:
        """Each server's CPU seconds so far, in the order they started."""
        return [server.cpu_seconds() for server in self.servers]


def alternating(index: int, nodes: int) -> int:
    """The node of client ``index``: a room's members alternate between the
    nodes, so every room spans them all."""
    return (index % ROOM_SIZE) % nodes


# ---------------------------------------------------------------- deploying


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def database_url(target: Target, workdir: Path) -> str:
    if target.database == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}"
    return target.database


async def deploy_chatsio(
    into: Deployment,
    target: Target,
    workdir: Path,
    count: int,
    rooms: bool,
    nodes: int,
    redis: bool,
    placement: Callable[[int, int], int],
) -> None:
    """Seed ``count`` users (one per client: a user may hold at most 20
    connections), start the server(s), and start one chat per room over REST;
    ``placement(index, nodes)`` is the node client ``index`` connects to.
    The servers go into ``into`` before they start, so the caller stops them
    even if this fails half-way. With Redis, the run's channel is its own
    (CHATSIO_REDIS_CHANNEL), so other users of that Redis do not reach it."""
    url = database_url(target, workdir)
    extra = {}
    if redis:
        channel = f"bench-perf-{secrets.token_hex(4)}"
        extra = {"REDIS_URL": REDIS_URL, "CHATSIO_REDIS_CHANNEL": channel}
    servers = [
        chatsio_server(workdir, url, target.without, target.source, **extra)
        for _ in range(nodes)
    ]
    into.servers.extend(servers)
    prefix = secrets.token_hex(3)  # runs against one PostgreSQL do not collide
    names = [f"p{prefix}_{index:05d}" for index in range(count)]
    tokens = await seed_users(SimpleNamespace(env=servers[0].env), names)
    for server in servers:
        server.start()
    for server in servers:
        await server.wait_healthy()
    chat_ids = [None] * math.ceil(count / ROOM_SIZE)
    if rooms:
        chat_ids = await create_chats(servers[0].url, chunks(names, ROOM_SIZE), tokens)
    into.clients = [
        {
            "url": servers[placement(index, nodes)].url,
            "token": tokens[name],
            "room": chat_ids[index // ROOM_SIZE],
            "pos": index % ROOM_SIZE,
        }
        for index, name in enumerate(names)
    ]


async def deploy_peer(
    into: Deployment, target: Target, workdir: Path, count: int
) -> None:
    """A peer server; its chats are started over ``/control`` by the generator."""
    make = node_peer if target.kind == "node" else python_peer
    server = make(workdir)
    into.servers.append(server)
    server.start()
    await server.wait_healthy()
    into.create_chats = True
    into.clients = [
        {
            "url": server.url,
            "token": f"u{index:05d}",
            "room": index // ROOM_SIZE,
            "pos": index % ROOM_SIZE,
        }
        for index in range(count)
    ]


@asynccontextmanager
async def deployed(
    target: Target,
    workdir: Path,
    count: int,
    *,
    rooms: bool = True,
    nodes: int = 1,
    redis: bool = False,
    placement: Callable[[int, int], int] = alternating,
):
    """Server(s) and a started generator holding ``count`` (unconnected)
    clients; everything is stopped on the way out, whatever happens."""
    deployment = Deployment([], [], False)
    generator = None
    try:
        if target.kind == "chatsio":
            await deploy_chatsio(
                deployment,
                target,
                workdir,
                count,
                rooms,
                nodes,
                redis or nodes > 1,
                placement,
            )
        else:
            await deploy_peer(deployment, target, workdir, count)
        config = {
            "clients": deployment.clients,
            "roomSize": ROOM_SIZE,
            "createChats": deployment.create_chats and rooms,
        }
        generator = Generator(workdir, config)
        await generator.start()
        yield deployment, generator
    finally:
        if generator is not None:
            await generator.stop()
        for server in deployment.servers:
            server.stop()


# ---------------------------------------------------------------- measuring


async def connect(generator: Generator, count: int, join: bool, concurrency: int):
    answer = await generator.command(
        60.0 + count / 5, cmd="connect", count=count, join=join, concurrency=concurrency
    )
    if answer["errors"]:
        raise RuntimeError(
            f"{answer['errors']} of {answer['requested']} clients failed to "
            f"connect or join; first: {answer['first_error']}"
        )
    return answer


def loop_lagged(step: dict) -> bool:
    """The generator's event loop lagged enough to explain a good share of
    the latency it measured (a slow server does not delay it)."""
    lag, p99 = step["loop_delay_p99_ms"], step["p99_ms"] or 0.0
    return lag > LOOP_DELAY_LIMIT_MS and lag > LOOP_DELAY_SHARE * p99


def generator_limited(step: dict) -> bool:
    """Near its core's limit, behind its schedule, or its own event loop
    delayed enough to show in the latencies."""
    return (
        step["generator_cpu_pct"] >= GENERATOR_CPU_LIMIT
        or step["behind_schedule"]
        or step["loop_delayed"]
    )


def passes(step: dict) -> bool:
    p99 = step["p99_ms"]
    return (
        step["delivered_ratio"] >= PASS_DELIVERED
        and p99 is not None
        and p99 < PASS_P99_MS
    )


async def measured_step(
    deployment: Deployment, generator: Generator, opts, rate: float, rooms: int
) -> dict:
    """One step at ``rate`` deliveries/s, with the server CPU it cost (in
    all, and each server's seconds in ``server_cpu_each``)."""
    await wait_quiet(opts.quiet_timeout)
    before = deployment.cpu_seconds()
    started = time.monotonic()
    step = await generator.command(
        opts.duration * 1.5 + opts.drain + 60,
        cmd="step",
        rate=rate,
        duration=opts.duration,
        rooms=rooms,
        drain=opts.drain,
    )
    each = [
        after - then
        for after, then in zip(deployment.cpu_seconds(), before, strict=True)
    ]
    cpu = sum(each)
    step["server_cpu_each"] = each
    step["wall_s"] = time.monotonic() - started
    lagged = loop_lagged(step)
    step["loop_delayed"] = lagged and step["generator_cpu_pct"] >= LOOP_BUSY_CPU
    step["machine_busy"] = lagged and not step["loop_delayed"]
    step["server_cpu_s"] = cpu
    step["server_cpu_pct"] = 100 * cpu / step["wall_s"]
    step["cpu_us_per_delivery"] = 1e6 * cpu / max(1, step["delivered"])
    step["generator_limited"] = generator_limited(step)
    print("    " + describe_step(step))
    return step


def fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def describe_step(step: dict) -> str:
    flags = []
    if step["generator_cpu_pct"] >= GENERATOR_CPU_LIMIT:
        flags.append("GENERATOR-LIMITED: its CPU at its core's limit")
    if step["behind_schedule"]:
        flags.append("GENERATOR-LIMITED: behind its send schedule")
    if step["loop_delayed"]:
        flags.append("GENERATOR-LIMITED: its event loop lagged")
    if step["machine_busy"]:
        flags.append("generator delayed by other processes on its core")
    if step["ack_errors"]:
        flags.append(f"ack errors {step['ack_errors']}")
    return (
        f"target {step['target_deliveries_per_s']:>7,.0f}/s: "
        f"delivered {step['delivered_per_s']:>8,.0f}/s "
        f"({100 * step['delivered_ratio']:.2f} %), lost {step['lost']}, "
        f"dup {step['duplicates']}, p50/p95/p99 {fmt(step['p50_ms'])}/"
        f"{fmt(step['p95_ms'])}/{fmt(step['p99_ms'])} ms, "
        f"server {step['cpu_us_per_delivery']:.1f} µs/delivery "
        f"({step['server_cpu_pct']:.0f} % CPU), "
        f"generator CPU {step['generator_cpu_pct']:.0f} % "
        f"(loop delay p99 {step['loop_delay_p99_ms']:.0f} ms), "
        f"{step['clients']} clients at {step['per_client_msgs_per_s']:.2f} msg/s"
        + (f" [{'; '.join(flags)}]" if flags else "")
    )


def fanout_metrics(prefix: str, step: dict) -> dict:
    return {
        f"{prefix}_delivered_per_s": step["delivered_per_s"],
        f"{prefix}_lost": step["lost"],
        f"{prefix}_dup": step["duplicates"],
        f"{prefix}_p50": step["p50_ms"],
        f"{prefix}_p95": step["p95_ms"],
        f"{prefix}_p99": step["p99_ms"],
        f"{prefix}_genlimited": step["generator_limited"],
    }


# ---------------------------------------------------------------- scenarios


async def fanout(target: Target, workdir: Path, opts) -> dict:
    """``--fanout-clients`` clients in rooms of 10, each sending
    ``--fanout-msgs`` msgs/s; delivered/s, lost, duplicates, latency."""
    count = opts.fanout_clients
    async with deployed(target, workdir, count) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        rate = count * opts.fanout_msgs * (ROOM_SIZE - 1)
        step = await measured_step(
            deployment, generator, opts, rate, count // ROOM_SIZE
        )
    return fanout_metrics("fanout", step)


def rooms_for(rate: float) -> int:
    """Rooms a step needs so that no client sends over MAX_PER_CLIENT."""
    needed = math.ceil(rate / (ROOM_SIZE - 1) / MAX_PER_CLIENT / ROOM_SIZE)
    return max(MIN_ROOMS, needed)


async def saturate(target: Target, workdir: Path, opts) -> dict:
    """Step the rate up until two steps in a row fail (< 99.9 % delivered or
    p99 >= 100 ms); the saturation point is the highest step that passed, so
    one noisy step on a shared machine does not end the ladder. The 9,000/s
    step gives the server CPU per delivery, and is run even past saturation."""
    count = opts.saturate_clients
    steps = sorted(set(opts.steps) | {CPU_RATE})
    found: dict = {"sat_rate": None, "sat_p99": None, "sat_genlimited": False}
    async with deployed(target, workdir, count) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        failures = 0
        for rate in steps:
            if failures >= 2 and rate != CPU_RATE:
                continue
            rooms = rooms_for(rate)
            if rooms * ROOM_SIZE > count:
                print(f"    {rate:,.0f}/s needs {rooms * ROOM_SIZE} clients: stop")
                break
            step = await measured_step(deployment, generator, opts, rate, rooms)
            if rate == CPU_RATE:
                found["cpu_us"] = step["cpu_us_per_delivery"]
                found["cpu_genlimited"] = step["generator_limited"]
            if failures >= 2:
                continue
            if passes(step):
                failures = 0
                found["sat_rate"] = step["delivered_per_s"]
                found["sat_p99"] = step["p99_ms"]
                found["sat_genlimited"] = step["generator_limited"]
            else:
                failures += 1
                if step["generator_limited"]:  # the server may do more
                    found["sat_genlimited"] = True
        found["sat_capped"] = failures < 2
        if failures < 2:
            print("    not saturated by the last step: raise --steps")
    return found


async def conns(target: Target, workdir: Path, opts) -> dict:
    """``--conns`` idle authenticated connections, each one WebSocket
    carrying both /control and /chat; RSS per connection and connect rate."""
    count = opts.conns
    warmup = 20
    async with deployed(target, workdir, count + warmup, rooms=False) as (
        deployment,
        generator,
    ):
        await connect(generator, warmup, False, opts.concurrency)
        await wait_quiet(opts.quiet_timeout)
        server = deployment.servers[0]
        before = server.rss_kib()
        answer = await connect(generator, count, False, opts.concurrency)
        # Settle: every connect was answered; let the server finish its work.
        await wait_quiet(min(opts.quiet_timeout, 10.0))
        after = server.rss_kib()
    per_conn = (after - before) / count
    limited = answer["cpu_pct"] >= GENERATOR_CPU_LIMIT
    print(
        f"    {count} connections in {answer['connect_seconds']:.1f} s "
        f"({answer['connects_per_s']:,.0f}/s, generator CPU "
        f"{answer['cpu_pct']:.0f} %); RSS {before / 1024:.1f} -> "
        f"{after / 1024:.1f} MiB: {per_conn:.1f} KiB per connection"
        + (" [GENERATOR-LIMITED connect rate]" if limited else "")
    )
    return {
        "kb_per_conn": per_conn,
        "conn_rate": answer["connects_per_s"],
        "conn_genlimited": limited,
    }


async def two_node(target: Target, workdir: Path, opts) -> dict:
    """Two chatsio processes sharing Redis and the database, every room
    spanning both (members alternate); nothing lost, no duplicates, p99."""
    if target.kind != "chatsio":
        return {}
    count = opts.fanout_clients
    async with deployed(target, workdir, count, nodes=2) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        rate = count * opts.two_node_msgs * (ROOM_SIZE - 1)
        step = await measured_step(
            deployment, generator, opts, rate, count // ROOM_SIZE
        )
    return fanout_metrics("two_node", step)


async def redis_fanout(target: Target, workdir: Path, opts) -> dict:
    """One chatsio process with REDIS_URL set: every emit goes through Redis
    pub/sub and back (as with many nodes) before it reaches the sockets."""
    if target.kind != "chatsio":
        return {}
    count = opts.fanout_clients
    async with deployed(target, workdir, count, redis=True) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        rate = count * opts.two_node_msgs * (ROOM_SIZE - 1)
        step = await measured_step(
            deployment, generator, opts, rate, count // ROOM_SIZE
        )
    return fanout_metrics("redis_one", step)


SCENARIOS: dict[str, Callable] = {
    "fanout": fanout,
    "saturate": saturate,
    "conns": conns,
    "two-node": two_node,
    "redis-fanout": redis_fanout,
}
