"""Measuring a process from outside: /proc readings, a periodic sampler,
latency percentiles and the pass/fail verdict of a run."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from common import Server

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def memory_map(pid: int) -> dict[str, int]:
    """Resident KiB by kind of mapping, from /proc/<pid>/smaps.

    glibc's main heap is ``[heap]``; a thread that mallocs gets an arena of up
    to 64 MiB; pymalloc maps 1 MiB arenas, which the kernel may merge with
    their neighbours into larger anonymous mappings, so "1 MiB anonymous" is
    a floor for pymalloc, not its total.
    """
    kinds: dict[str, int] = {}
    kind = "other"
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                start, end = (int(x, 16) for x in head[0].split("-"))
                size = (end - start) // 1024
                name = head[5] if len(head) > 5 else ""
                if name == "[heap]":
                    kind = "glibc main heap"
                elif name.startswith("/"):
                    kind = "files (code, sqlite)"
                elif name:
                    kind = name
                elif size == 1024:
                    kind = "1 MiB anonymous"
                elif 60_000 <= size <= 65_536:
                    kind = "~64 MiB anonymous (thread arenas)"
                else:
                    kind = "other anonymous"
            elif head[0] == "Rss:":
                kinds[kind] = kinds.get(kind, 0) + int(head[1])
    return kinds


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Sample:
    t: float  # time.monotonic()
    rss_kib: int
    fds: int
    cpu_s: float
    sockets: dict[str, int]


@dataclass
class Sampler:
    """Reads the server's RSS, fds, CPU and sockets every ``every`` seconds."""

    server: Server
    every: float = 5.0
    samples: list[Sample] = field(default_factory=list)
    task: asyncio.Task | None = None

    async def take(self) -> Sample:
        sockets = await self.server.sockets()
        sample = Sample(
            time.monotonic(),
            self.server.rss_kib(),
            self.server.fds(),
            self.server.cpu_seconds(),
            sockets,
        )
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.take()
            except (OSError, aiohttp.ClientError) as exc:
                print(f"sampler: {exc!r}")
            await asyncio.sleep(max(0.0, self.every - (time.monotonic() - started)))

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.t <= end]


@dataclass
class CpuMeter:
    """CPU use of some processes over a stretch of wall time."""

    pids: dict[str, int]
    started: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.started = time.monotonic()
        self.cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def percent(self) -> dict[str, float]:
        """Each process's CPU since start(), in % of one core."""
        wall = max(1e-9, time.monotonic() - self.started)
        return {
            name: 100 * (cpu_seconds(pid) - self.cpu[name]) / wall
            for name, pid in self.pids.items()
        }


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (nan when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_line(values: Iterable[float]) -> tuple[str, dict[str, float]]:
    """``n, p50, p95, p99, max`` of latencies in seconds, printed in ms."""
    ordered = sorted(values)
    found = {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else math.nan,
    }
    text = (
        f"n={found['n']} p50={found['p50'] * 1000:.1f} ms "
        f"p95={found['p95'] * 1000:.1f} ms p99={found['p99'] * 1000:.1f} ms "
        f"max={found['max'] * 1000:.1f} ms"
    )
    return text, found


@dataclass
class Verdict:
    """Pass criteria, checked in code; the exit code says whether all held."""

    rows: list[tuple[str, str, bool]] = field(default_factory=list)

    def check(self, name: str, measured: str, passed: bool) -> None:
        self.rows.append((name, measured, passed))

    def report(self) -> int:
        print("\ncriteria:")
        for name, measured, passed in self.rows:
            print(f"  {'PASS' if passed else 'FAIL'}  {name}: {measured}")
        failed = sum(1 for *_, passed in self.rows if not passed)
        print("result:", "PASS" if not failed else f"FAIL ({failed} criteria)")
        return 1 if failed else 0
