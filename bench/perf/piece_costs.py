"""The ``pieces`` scenario: what each transport speed-up saves on its own.

A subject is one piece of ``chatsio.transport.pieces``, a set of them
(``--piece-sets``), or every piece measured (``all``). For each, a fresh
chatsio server with every piece on and a fresh one without the subject's
pieces (started through ``serve_without.py``) are measured one after the
other at 9,000 deliveries/s, the ``saturate`` scenario's CPU step: the
server's utime + stime over the deliveries made. Which of the two goes first
flips with each repeat, so a machine that speeds up or slows down during a
run favours neither. Each measurement has a database of its own.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from scenarios import (
    CPU_RATE,
    PASS_DELIVERED,
    ROOM_SIZE,
    Target,
    connect,
    deployed,
    measured_step,
    rooms_for,
)

from chatsio.transport.pieces import PIECES

WARM_UP_S = 2.0  # an unmeasured step first: saturate's 9,000/s step follows others
KEEP = 2.0  # % saved: a piece saving less goes, in favour of the library's path
ON, OFF = "on", "off"


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pieces",
        help="pieces: comma-separated transport pieces to measure alone, and "
        f"all together (default every one: {', '.join(PIECES)})",
    )
    parser.add_argument(
        "--piece-sets",
        default="",
        help="pieces: also measure these sets, comma-separated, the pieces of "
        "a set joined by + (e.g. one-pass-ack+direct-ack-write)",
    )
    parser.add_argument(
        "--without",
        default="",
        help="every other scenario: run chatsio without these transport "
        "pieces (comma-separated)",
    )


def subjects(pieces: str | None, piece_sets: str) -> list[tuple[str, ...]]:
    """Each piece alone, each set, then every piece of ``pieces`` together."""
    alone = pieces.split(",") if pieces else list(PIECES)
    sets = [tuple(chosen.split("+")) for chosen in piece_sets.split(",") if chosen]
    found = [(name,) for name in alone] + sets
    if len(alone) > 1:
        found.append(tuple(alone))
    check_names(name for subject in found for name in subject)
    return found


def check_names(names) -> None:
    unknown = sorted(set(names) - set(PIECES))
    if unknown:
        raise SystemExit(
            f"no transport piece named {', '.join(unknown)}; "
            f"the pieces: {', '.join(PIECES)}"
        )


def label(subject: tuple[str, ...]) -> str:
    left = [name for name in PIECES if name not in subject]
    if len(subject) > len(left):
        return "every piece" + (f" but {', '.join(left)}" if left else "")
    return "+".join(subject)


async def pieces(target: Target, workdir: Path, opts) -> dict:
    """Per subject: CPU µs per delivery at 9,000/s, every piece on and the
    subject's pieces off (None for a server that failed the step)."""
    if target.kind != "chatsio":
        return {}
    return await measure(target, workdir, opts, opts.piece_subjects)


async def measure(target: Target, workdir: Path, opts, chosen: list) -> dict:
    found: dict = {}
    for subject in chosen:
        sides = [(ON, ()), (OFF, subject)]
        if opts.repeat % 2 == 0:
            sides.reverse()
        for side, removed in sides:
            name = label(subject)
            print(f"  {name}: {side}")
            server = replace(target, without=removed)
            found.setdefault(name, {})[side] = await attempt(server, workdir, opts)
    return found


async def attempt(target: Target, workdir: Path, opts) -> float | None:
    """A second try when the first cannot start its clients (a busy machine
    can hold a join past its deadline)."""
    for _ in range(2):
        where = Path(tempfile.mkdtemp(prefix="pieces-", dir=workdir))
        try:
            return await cpu_per_delivery(target, where, opts)
        except Exception as exc:  # report it and measure the rest
            print(f"    FAILED: {type(exc).__name__}: {exc}")
    return None


async def cpu_per_delivery(target: Target, workdir: Path, opts) -> float | None:
    rooms = rooms_for(CPU_RATE)
    count = rooms * ROOM_SIZE
    async with deployed(target, workdir, count) as (deployment, generator):
        await connect(generator, count, True, opts.concurrency)
        await generator.command(
            WARM_UP_S * 1.5 + opts.drain + 60,
            cmd="step",
            rate=CPU_RATE,
            duration=WARM_UP_S,
            rooms=rooms,
            drain=opts.drain,
        )
        step = await measured_step(deployment, generator, opts, CPU_RATE, rooms)
    if step["delivered_ratio"] < PASS_DELIVERED or step["ack_errors"]:
        print("    FAILED: not every message was delivered and acked")
        return None
    return step["cpu_us_per_delivery"]


async def before_after(target: Target, workdir: Path, opts, runs: list[dict]) -> None:
    """After the repeats: every piece on against the pieces the verdict keeps,
    ``--repeats`` times more, added to ``runs`` (one row more in the table)."""
    removed = tuple(
        name for name in PIECES if (found := compare(name, runs)) and found[3] < KEEP
    )
    if not removed:
        return
    for repeat, run in enumerate(runs, 1):
        opts.repeat = repeat
        print(f"[{repeat}/{len(runs)}] the kept set: without {', '.join(removed)}")
        measured = await measure(target, workdir, opts, [removed])
        run[f"kept set: without {label(removed)}"] = measured[label(removed)]


# ---------------------------------------------------------------- the table


def gain_pct(on: float, off: float) -> float:
    return 100 * (off - on) / off


def spread(values: list[float], spec: str) -> str:
    return f"{format(min(values), spec)}..{format(max(values), spec)}"


def compare(name: str, runs: list[dict]):
    """(pairs of on/off, median on, median off, gain %), or None: no pair."""
    measured = [run[name] for run in runs if name in run]
    pairs = [(m[ON], m[OFF]) for m in measured if m[ON] and m[OFF]]
    if not pairs:
        return None
    on = statistics.median(on for on, _ in pairs)
    off = statistics.median(off for _, off in pairs)
    return pairs, on, off, gain_pct(on, off)


def row(name: str, runs: list[dict]) -> list[str]:
    found = compare(name, runs)
    if found is None:
        return [name, "failed", "", "", "", ""]
    pairs, on, off, gain = found
    gains = [gain_pct(*pair) for pair in pairs]
    verdict = "keep" if gain >= KEEP else "remove"
    if max(gains) - min(gains) > abs(gain):
        verdict += " (spread > gain)"
    failed = sum(name in run for run in runs) - len(pairs)
    if failed:
        verdict += f" ({failed} failed)"
    return [
        name,
        f"{on:.1f} ({spread([p[0] for p in pairs], '.1f')})",
        f"{off:.1f} ({spread([p[1] for p in pairs], '.1f')})",
        f"{gain:+.1f}",
        spread(gains, "+.1f"),
        verdict if name in PIECES else "",
    ]


def table(runs: list[dict]) -> str:
    """piece → CPU µs/delivery on and off (medians, range over repeats), the
    gain of the medians, the gains of the repeats' pairs, the verdict."""
    runs = [run for run in runs if "failed" not in run]
    names = list(dict.fromkeys(name for run in runs for name in run))
    rows = [["piece (off)", "on µs/deliv", "off µs/deliv", "gain %"]]
    rows[0] += ["gain % per repeat", "verdict"]
    rows += [row(name, runs) for name in names]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(text.ljust(w) for text, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    every_on = [run[name][ON] for run in runs for name in run if run[name].get(ON)]
    if len(every_on) > 1:
        median = statistics.median(every_on)
        lines.append(
            f"\nthe {len(every_on)} servers with every piece on (one config): "
            f"median {median:.1f} µs, range {spread(every_on, '.1f')} "
            f"({100 * (max(every_on) - min(every_on)) / median:.0f} % of the median)"
        )
    return "\n".join(lines)


def legend() -> str:
    return (
        "on: every piece on; off: the row's pieces taken away. µs of server CPU "
        f"per delivery at {CPU_RATE:,.0f}/s, medians (range) over the repeats. "
        "gain % = (off - on) / off of the medians; per repeat: of each repeat's "
        f"pair. A piece saving under {KEEP:g} % is to be removed."
    )
