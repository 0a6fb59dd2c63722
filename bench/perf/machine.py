"""The machine under a perf run: reading processes from /proc, pinning them
to cores, raising the open-file limit and waiting for a quiet machine."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the issue-6 benches' helpers
from measure import cpu_seconds, rss_kib  # noqa: E402  (re-exported)

__all__ = ["cpu_seconds", "rss_kib"]
SERVER_CORE = 0
GENERATOR_CORE = 1
QUIET_IDLE = 0.90  # each core at least this idle over the sample
QUIET_SAMPLE = 2.0


def pinned(argv: list[str], core: int) -> list[str]:
    """``argv`` run under ``taskset -c core``. taskset execs the command, so
    the child's pid is the command's pid."""
    return ["taskset", "-c", str(core), *argv]


def raise_open_files() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; children
    (servers and generator) inherit it. The new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _core_times() -> dict[str, tuple[int, int]]:
    """(idle, total) jiffies per core from /proc/stat."""
    found = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                numbers = [int(v) for v in values[:8]]
                idle = numbers[3] + numbers[4]  # idle + iowait
                found[name] = (idle, sum(numbers))
    return found


async def idle_fractions(seconds: float = QUIET_SAMPLE) -> dict[str, float]:
    before = _core_times()
    await asyncio.sleep(seconds)
    after = _core_times()
    return {
        core: (after[core][0] - before[core][0])
        / max(1, after[core][1] - before[core][1])
        for core in before
    }


async def wait_quiet(within: float) -> bool:
    """Wait until every core is >= 90 % idle over a 2 s sample, at most
    ``within`` seconds; warn and go on if it never is. Whether it was quiet."""
    deadline = time.monotonic() + within
    while True:
        idle = await idle_fractions()
        if min(idle.values()) >= QUIET_IDLE:
            return True
        if time.monotonic() >= deadline:
            shown = ", ".join(f"{core} {100 * v:.0f}%" for core, v in idle.items())
            print(f"  warning: machine not quiet after {within:.0f} s (idle {shown})")
            return False


def commit(tree: Path = ROOT) -> str:
    """The commit of the source ``tree`` measured, with a mark when its
    chatsio/ has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True
        ).stdout.strip()

    dirty = git("status", "--porcelain", "chatsio")
    return git("rev-parse", "--short", "HEAD") + (" + local changes" if dirty else "")


def describe() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {os.cpu_count()} CPUs; "
        f"chatsio at {commit()}; load average {load}"
    )
