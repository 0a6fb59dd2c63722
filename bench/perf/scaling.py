"""The horizontal-scaling scenarios (issue 19): what a node pays for the
rest of the deployment.

- ``idle-node``: node A carries the load, node B shares its Redis and
  database and has no sockets at all; B's CPU under A's load, against B's
  own idle floor, and A's CPU per delivery.
- ``n-nodes``: 1, 2 and 4 nodes, each hosting rooms whose members are all
  its own, the same load on each; each node's CPU per local delivery, and
  its ratio to the one-node figure (flat in N if a node pays only for what
  it hosts).

Every node runs with ``REDIS_URL`` set (a one-node deployment too, so the
rows compare like with like), all pinned to the server core like
``two-node``. A node's CPU is utime + stime from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from machine import wait_quiet
from scenarios import (
    ROOM_SIZE,
    Deployment,
    Target,
    connect,
    deployed,
    measured_step,
)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--idle-msgs",
        type=float,
        default=2.0,
        help="idle-node: msgs/s each of node A's --fanout-clients sends "
        "(default 2: 1,000 msgs/s, 9,000 deliveries/s with 500 clients)",
    )
    parser.add_argument(
        "--node-counts",
        type=sizes,
        default=[1, 2, 4],
        help="n-nodes: the deployments' sizes, comma-separated (default 1,2,4)",
    )
    parser.add_argument(
        "--node-clients",
        type=int,
        default=250,
        help="n-nodes: clients per node, in rooms of 10 (default 250)",
    )
    parser.add_argument(
        "--node-msgs",
        type=float,
        default=1.0,
        help="n-nodes: msgs/s each client sends (default 1: 250 msgs/s per node)",
    )


def sizes(raw: str) -> list[int]:
    return [int(size) for size in raw.split(",") if size.strip()]


def on_first_node(index: int, nodes: int) -> int:
    return 0


def room_per_node(index: int, nodes: int) -> int:
    """Room r on node r mod N: every room's members on one node."""
    return (index // ROOM_SIZE) % nodes


def fresh_dir(workdir: Path) -> Path:
    """A database of its own for each deployment."""
    return Path(tempfile.mkdtemp(prefix="scaling-", dir=workdir))


async def idle_cpu_pct(deployment: Deployment, opts) -> list[float]:
    """Each server's CPU, % of a core, over ``--duration`` s with no load."""
    await wait_quiet(opts.quiet_timeout)
    before, started = deployment.cpu_seconds(), time.monotonic()
    await asyncio.sleep(opts.duration)
    wall = time.monotonic() - started
    after = deployment.cpu_seconds()
    return [100 * (a - b) / wall for a, b in zip(after, before, strict=True)]


def step_summary(step: dict) -> dict:
    return {
        "delivered_per_s": step["delivered_per_s"],
        "p99": step["p99_ms"],
        "lost": step["lost"],
        "dup": step["duplicates"],
        "genlimited": step["generator_limited"],
    }


async def idle_node(target: Target, workdir: Path, opts) -> dict:
    """Node A with every client, node B with none; B's CPU idle and under
    A's load, A's CPU per delivery."""
    if target.kind != "chatsio":
        return {}
    count = opts.fanout_clients
    async with deployed(
        target, fresh_dir(workdir), count, nodes=2, placement=on_first_node
    ) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        _, b_floor = await idle_cpu_pct(deployment, opts)
        rate = count * opts.idle_msgs * (ROOM_SIZE - 1)
        step = await measured_step(
            deployment, generator, opts, rate, count // ROOM_SIZE
        )
    a_cpu, b_cpu = step["server_cpu_each"]
    found = {
        "b_floor_pct": b_floor,
        "b_pct": 100 * b_cpu / step["wall_s"],
        "b_us_per_msg": 1e6 * b_cpu / max(1, step["sent"]),
        "a_pct": 100 * a_cpu / step["wall_s"],
        "a_us": 1e6 * a_cpu / max(1, step["delivered"]),
        **step_summary(step),
    }
    print(
        f"    node B (no sockets): {found['b_floor_pct']:.2f} % of a core idle, "
        f"{found['b_pct']:.2f} % under A's load ({found['b_us_per_msg']:.1f} µs "
        f"per message A handled); node A: {found['a_pct']:.0f} % of its core, "
        f"{found['a_us']:.1f} µs per delivery"
    )
    return found


async def n_nodes(target: Target, workdir: Path, opts) -> dict:
    """For each deployment size: every node's CPU per local delivery, their
    mean, and the mean's ratio to the one-node deployment's. A size that
    fails is reported and left out; the others are still measured."""
    if target.kind != "chatsio":
        return {}
    found = {}
    for nodes in opts.node_counts:
        print(f"  {nodes} node(s)")
        try:
            found[str(nodes)] = await nodes_step(target, workdir, opts, nodes)
        except Exception as exc:  # report it and measure the other sizes
            print(f"    FAILED: {type(exc).__name__}: {exc}")
    base = found.get("1", {}).get("us_mean")
    for size in found.values():
        size["ratio"] = size["us_mean"] / base if base else None
    return found


async def nodes_step(target: Target, workdir: Path, opts, nodes: int) -> dict:
    count = nodes * opts.node_clients
    async with deployed(
        target,
        fresh_dir(workdir),
        count,
        nodes=nodes,
        redis=True,
        placement=room_per_node,
    ) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        rate = count * opts.node_msgs * (ROOM_SIZE - 1)
        step = await measured_step(
            deployment, generator, opts, rate, count // ROOM_SIZE
        )
        urls = [server.url for server in deployment.servers]
    local = [step["delivered_by_url"].get(url, 0) for url in urls]
    cpu = step["server_cpu_each"]
    us_each = [
        1e6 * seconds / max(1, made) for seconds, made in zip(cpu, local, strict=True)
    ]
    found = {
        "us_each": us_each,
        "us_mean": statistics.mean(us_each),
        "pct_each": [100 * seconds / step["wall_s"] for seconds in cpu],
        "local_per_s": statistics.mean(local) / opts.duration,
        **step_summary(step),
    }
    print(
        "    µs per local delivery, node by node: "
        + " / ".join(f"{us:.1f}" for us in us_each)
        + f" (mean {found['us_mean']:.1f}); % of the core each: "
        + " / ".join(f"{pct:.0f}" for pct in found["pct_each"])
    )
    return found


# ---------------------------------------------------------------- the tables


def spread(values: list[float], spec: str) -> str:
    """The median and (range) of ``values``."""
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{spec}} ({low:{spec}}..{high:{spec}})"


def aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def measured(runs: list[dict]) -> list[dict]:
    return [run for run in runs if run and "failed" not in run]


def lost_dup(runs: list[dict]) -> str:
    return f"{max(r['lost'] for r in runs)}/{max(r['dup'] for r in runs)}"


def limited(runs: list[dict]) -> str:
    return "!" if any(run["genlimited"] for run in runs) else ""


def idle_table(rows: dict[str, list[dict]]) -> str:
    """One row per server: ``rows`` maps its label to its repeats."""
    table = [["server", "B idle %", "B loaded %", "B µs/msg", "A %", "A µs/deliv"]]
    table[0] += ["p99 ms", "lost/dup"]
    for name, runs in rows.items():
        runs = measured(runs)
        if not runs:
            table.append([name, "failed", "", "", "", "", "", ""])
            continue

        def column(metric, spec=".1f", runs=runs):
            return spread([run[metric] for run in runs], spec)

        table.append(
            [
                name,
                column("b_floor_pct", ".2f"),
                column("b_pct", ".2f"),
                column("b_us_per_msg"),
                column("a_pct", ".0f"),
                column("a_us"),
                column("p99") + limited(runs),
                lost_dup(runs),
            ]
        )
    return aligned(table)


def nodes_table(rows: dict[str, list[dict]]) -> str:
    """One row per server and deployment size."""
    table = [["server", "nodes", "µs/local deliv", "ratio to 1 node"]]
    table[0] += ["node CPU %", "local deliv/s per node", "p99 ms", "lost/dup"]
    for name, runs in rows.items():
        runs = measured(runs)
        sizes = list(dict.fromkeys(size for run in runs for size in run))
        for size in sizes:
            each = [run[size] for run in runs if size in run]
            ratios = [run["ratio"] for run in each if run["ratio"] is not None]
            table.append(
                [
                    name,
                    size,
                    spread([run["us_mean"] for run in each], ".1f"),
                    spread(ratios, ".2f"),
                    spread([statistics.mean(run["pct_each"]) for run in each], ".1f"),
                    spread([run["local_per_s"] for run in each], ",.0f"),
                    spread([run["p99"] for run in each], ".1f") + limited(each),
                    lost_dup(each),
                ]
            )
    return aligned(table)


def legend() -> str:
    return (
        "Medians (range) over the repeats. idle-node: B's CPU as % of one "
        "core, with no load (idle) and while A carries the load (loaded); "
        "B µs/msg = B's CPU over the messages A handled; A's CPU per delivery. "
        "n-nodes: each node's CPU over the deliveries to its own sockets, the "
        "mean over the nodes; the ratio of that mean to the one-node "
        "deployment's in the same repeat; node CPU % is the mean over the "
        "nodes. ! = the generator was the limit in at least one repeat."
    )
