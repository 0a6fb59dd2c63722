"""bench/perf: chatsio against a Node socket.io peer and a default
python-socketio peer, side by side in one run. See bench/perf/README.md.

Every server runs pinned to core 0 and the Node load generator to core 1.
Each scenario is repeated (default 3) with a fresh server each time, the
servers interleaved within a repeat; the table shows the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import piece_costs
import scaling
from machine import ROOT, commit, describe, raise_open_files
from scenarios import SCENARIOS as COMPARED
from scenarios import Target

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGETS = {
    "chatsio-sqlite": Target("chatsio-sqlite", "chatsio (SQLite)", "chatsio", "sqlite"),
    "chatsio-pg": Target("chatsio-pg", "chatsio (PostgreSQL)", "chatsio", PG_URL),
    "node": Target("node", "Node socket.io 4", "node"),
    "python": Target("python", "python-socketio default", "python"),
}
FULL_STEPS = [1000, 2000, 4000, 6000, 9000, 12000, 18000, 27000, 36000]
FULL_STEPS += [54000, 72000, 96000, 128000]
QUICK_STEPS = [1000, 3000, 6000, 9000, 18000, 36000, 54000]
BUDGET = 4 * 3600.0
# The peers cannot run these; the last three are not run by default.
CHATSIO_ONLY = ("two-node", "redis-fanout", "pieces", "idle-node", "n-nodes")
SCENARIOS = {
    **COMPARED,
    "pieces": piece_costs.pieces,
    "idle-node": scaling.idle_node,
    "n-nodes": scaling.n_nodes,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/perf/run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 1 repeat, 2 s steps, 1,000 connections, fewer steps",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(COMPARED),
        help=f"comma-separated, from {', '.join(SCENARIOS)} "
        f"(default: {', '.join(COMPARED)})",
    )
    parser.add_argument(
        "--servers",
        default=",".join(TARGETS),
        help=f"comma-separated, from {', '.join(TARGETS)} (default: all)",
    )
    parser.add_argument("--repeats", type=int, help="default 3 (--quick: 1)")
    parser.add_argument("--duration", type=float, help="s per step (default 10)")
    parser.add_argument(
        "--drain", type=float, default=10.0, help="max s to wait after a step"
    )
    parser.add_argument(
        "--steps",
        help="saturate: comma-separated deliveries/s (9000 is always included)",
    )
    parser.add_argument("--fanout-clients", type=int, default=500)
    parser.add_argument(
        "--fanout-msgs",
        type=float,
        default=1.0,
        help="fanout: msgs/s each client sends (default 1: 4,500 deliveries/s)",
    )
    parser.add_argument(
        "--two-node-msgs",
        type=float,
        default=1.0,
        help="two-node and redis-fanout: msgs/s each client sends (default 1)",
    )
    parser.add_argument(
        "--saturate-clients",
        type=int,
        help="saturate: the client pool (default 1000; --quick 500)",
    )
    parser.add_argument("--conns", type=int, help="default 5000 (--quick 1000)")
    parser.add_argument(
        "--concurrency", type=int, default=50, help="connects/joins in flight"
    )
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        help="max s to wait for a quiet machine before a measurement "
        "(default 60; --quick 6)",
    )
    parser.add_argument(
        "--pg-url", default=PG_URL, help=f"chatsio-pg's database (default {PG_URL})"
    )
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        default=[],
        help="run the chatsio rows from this checkout (e.g. a worktree of an "
        "earlier commit); given more than once, each chatsio row runs from "
        "each, interleaved within every repeat",
    )
    piece_costs.add_options(parser)
    scaling.add_options(parser)
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 3)
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.saturate_clients = args.saturate_clients or (500 if quick else 1000)
    args.conns = args.conns or (1000 if quick else 5000)
    if args.quiet_timeout is None:
        args.quiet_timeout = 6.0 if quick else 60.0
    if args.steps:
        args.steps = [float(x) for x in args.steps.split(",")]
    else:
        args.steps = [float(x) for x in (QUICK_STEPS if quick else FULL_STEPS)]
    args.scenarios = pick(args.scenarios, SCENARIOS, "--scenarios")
    args.servers = pick(args.servers, TARGETS, "--servers")
    TARGETS["chatsio-pg"] = replace(TARGETS["chatsio-pg"], database=args.pg_url)
    args.piece_subjects = piece_costs.subjects(args.pieces, args.piece_sets)
    if args.without:
        without_pieces(args.without.split(","))
    if args.source:
        args.servers = from_sources(args.servers, args.source)
    return args


def from_sources(servers: list[str], sources: list[Path]) -> list[str]:
    """Each chatsio row once per source tree, keyed and labelled by its commit."""
    chosen = []
    for key in servers:
        target = TARGETS[key]
        if target.kind != "chatsio":
            chosen.append(key)
            continue
        for source in sources:
            tree = source.resolve()
            if not (tree / "chatsio" / "__main__.py").is_file():
                raise SystemExit(f"--source {source}: no chatsio package there")
            at = commit(tree)
            row = f"{key}@{at.split()[0]}"
            label = f"{target.label} at {at}"
            TARGETS[row] = replace(target, key=row, label=label, source=tree)
            chosen.append(row)
    if len(set(chosen)) < len(chosen):
        raise SystemExit("--source: two of the trees are at the same commit")
    return chosen


def without_pieces(names: list[str]) -> None:
    """The chatsio rows run without these transport pieces."""
    piece_costs.check_names(names)
    for key, target in TARGETS.items():
        if target.kind == "chatsio":
            label = f"{target.label} without {', '.join(names)}"
            TARGETS[key] = replace(target, label=label, without=tuple(names))


def pick(raw: str, known: dict, option: str) -> list[str]:
    chosen = [item.strip() for item in raw.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown:
        raise SystemExit(f"{option}: unknown {', '.join(unknown)}")
    return chosen


# ---------------------------------------------------------------- the run


async def run_all(args: argparse.Namespace, workdir: Path) -> dict:
    """results[target key][scenario] = list of metric dicts, one per repeat."""
    results: dict = {key: {} for key in args.servers}
    for repeat in range(1, args.repeats + 1):
        args.repeat = repeat  # the pieces scenario flips its order with it
        for scenario in args.scenarios:
            for key in args.servers:
                target = TARGETS[key]
                if scenario in CHATSIO_ONLY and target.kind != "chatsio":
                    continue
                print(
                    f"[{repeat}/{args.repeats}] {scenario} on {target.label}"
                    f" (chatsio at {commit(target.source or ROOT)})"
                )
                started = time.monotonic()
                try:
                    found = await SCENARIOS[scenario](target, workdir, args)
                except Exception as exc:  # report it and run the rest
                    print(f"    FAILED: {type(exc).__name__}: {exc}")
                    found = {"failed": str(exc)}
                print(f"    ({time.monotonic() - started:.0f} s)")
                results[key].setdefault(scenario, []).append(found)
    return results


def median(runs: list[dict], name: str):
    values = [run[name] for run in runs if run.get(name) is not None]
    return statistics.median(values) if values else None


def any_flag(runs: list[dict], name: str) -> bool:
    return any(run.get(name) for run in runs)


# ---------------------------------------------------------------- the table

COLUMNS = [
    # (heading, scenario, metric, generator-limited flag, format)
    ("saturation deliv/s", "saturate", "sat_rate", "sat_genlimited", ",.0f"),
    ("p99 there ms", "saturate", "sat_p99", "sat_genlimited", ".1f"),
    ("CPU µs/deliv @9k/s", "saturate", "cpu_us", "cpu_genlimited", ".1f"),
    ("KiB/conn", "conns", "kb_per_conn", None, ".1f"),
    ("conn/s", "conns", "conn_rate", "conn_genlimited", ",.0f"),
    ("fanout deliv/s", "fanout", "fanout_delivered_per_s", "fanout_genlimited", ",.0f"),
    ("fanout p99 ms", "fanout", "fanout_p99", "fanout_genlimited", ".1f"),
    ("fanout lost/dup", "fanout", None, "fanout_genlimited", ""),
    ("2-node p99 ms", "two-node", "two_node_p99", "two_node_genlimited", ".1f"),
    ("2-node lost/dup", "two-node", None, "two_node_genlimited", ""),
    ("Redis p99 ms", "redis-fanout", "redis_one_p99", "redis_one_genlimited", ".1f"),
    ("Redis lost/dup", "redis-fanout", None, "redis_one_genlimited", ""),
]
# The lost/dup columns' metric prefix.
LOST_DUP = {"fanout lost/dup": "fanout", "2-node lost/dup": "two_node"}
LOST_DUP["Redis lost/dup"] = "redis_one"


def cell(runs: list[dict], metric: str | None, flag: str, spec: str, column: str):
    if not runs:
        return "", None
    if all(run.get("failed") for run in runs):
        return "failed", None
    if metric is None:  # lost/dup
        prefix = LOST_DUP[column]
        lost, dup = median(runs, f"{prefix}_lost"), median(runs, f"{prefix}_dup")
        if lost is None:
            return "-", None
        text = f"{lost:.0f}/{dup:.0f}"
    else:
        value = median(runs, metric)
        if value is None:
            return "-", None
        text = format(value, spec)
        if metric == "sat_rate" and any_flag(runs, "sat_capped"):
            text = ">=" + text  # the ladder ended before the server saturated
    limited = flag is not None and any_flag(runs, flag)
    return text + ("!" if limited else ""), (
        None if metric is None else median(runs, metric)
    )


def table(results: dict, servers: list[str]) -> str:
    rows = [["server", *(c[0] for c in COLUMNS)]]
    values: dict = {}
    for key in servers:
        row = [TARGETS[key].label]
        for heading, scenario, metric, flag, spec in COLUMNS:
            text, value = cell(
                results[key].get(scenario, []), metric, flag, spec, heading
            )
            row.append(text)
            values[key, heading] = value
        rows.append(row)
    for key in servers:
        if TARGETS[key].kind != "chatsio":
            continue
        for base in ("node", "python"):
            if base in servers:
                rows.append(ratio_row(key, base, values))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(text.rjust(w) for text, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio_row(key: str, base: str, values: dict) -> list[str]:
    row = [f"{key} / {base}"]
    for heading, *_ in COLUMNS:
        ours, theirs = values.get((key, heading)), values.get((base, heading))
        row.append(f"{ours / theirs:.2f}x" if ours and theirs else "")
    return row


def legend(args: argparse.Namespace) -> str:
    each = f"{args.fanout_clients} clients in rooms of 10 sending"
    return (
        f"fanout: {each} {args.fanout_msgs:g} msg/s each; two-node: {each} "
        f"{args.two_node_msgs:g} msg/s each, members alternating between two "
        f"chatsio processes sharing Redis and the database (both on core 0); "
        f"Redis: the same load on one chatsio process with REDIS_URL set.\n"
        ">= : the server passed every step it was given (the ladder or the "
        "client pool ended first), so its saturation point is higher.\n"
        "Medians over the repeats. ! = the generator was the limit in at least "
        "one repeat (its CPU >= 80 % of its core, it fell behind its send "
        "schedule, or its own event loop lagged under its load): that number "
        "is a floor for the server.\n"
        "Ratios are chatsio / peer: above 1 is better for chatsio in deliv/s "
        "and conn/s, worse in p99, CPU and KiB."
    )


async def main(args: argparse.Namespace) -> int:
    nofile = raise_open_files()
    if nofile < args.conns * 2 + 1000:
        print(f"warning: open-file limit {nofile} is low for {args.conns} conns")
    print(f"bench/perf: {describe()}; open-file limit {nofile}")
    print(
        f"servers on core 0, generator on core 1; {args.repeats} repeat(s), "
        f"{args.duration:g} s per step"
    )
    workdir = Path(tempfile.mkdtemp(prefix="chatsio-perf-"))
    try:
        results = await run_all(args, workdir)
        for key in args.servers:
            if results[key].get("pieces"):
                runs = results[key]["pieces"]
                await piece_costs.before_after(TARGETS[key], workdir, args, runs)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if set(args.scenarios) & set(COMPARED):
        print()
        print(table(results, args.servers))
        print()
        print(legend(args))
    for key in args.servers:
        if results[key].get("pieces"):
            print(f"\nEach transport piece alone, on {TARGETS[key].label}:\n")
            print(piece_costs.table(results[key]["pieces"]))
            print(piece_costs.legend())
    print_scaling(results, args.servers)
    print(f"finished {describe()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def print_scaling(results: dict, servers: list[str]) -> None:
    """The idle-node and n-nodes tables, one row per chatsio row measured."""
    shown = False
    for scenario, table in (
        ("idle-node", scaling.idle_table),
        ("n-nodes", scaling.nodes_table),
    ):
        rows = {
            TARGETS[key].label: results[key][scenario]
            for key in servers
            if results[key].get(scenario)
        }
        if rows:
            print(f"\n{scenario}:\n")
            print(table(rows))
            shown = True
    if shown:
        print(scaling.legend())


def entry() -> int:
    """Run within a budget; Ctrl+C or SIGTERM cancels the run, so every
    ``finally`` stops its servers and generator (exit code 130)."""
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in a log file too
    from common import run  # bench/'s helpers: on the path once machine is in

    return run(main, args, BUDGET)


if __name__ == "__main__":
    sys.exit(entry())
