"""What the load runs share: a real ``chatsio serve`` process and how to read
it from outside, the server options of every run, and the frame of a run."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from measure import cpu_seconds, open_fds, rss_kib
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)
NAMESPACES = ("/control", "/chat")


# ---------------------------------------------------------------- processes


def die_with_parent() -> None:
    """In a child: get SIGTERM when the bench process dies, however it dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One ``chatsio serve`` child process on 127.0.0.1, logging to a file."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        *,
        log_level: str = "info",
        env: dict[str, str] | None = None,
        inspect: bool = False,
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        self.inspect = inspect
        # A clean environment: nothing from the caller's shell (a REDIS_URL,
        # say) leaks into the run; every setting is the default unless named.
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "DATABASE_URL": database_url,
            "CHATSIO_LOG_LEVEL": log_level,
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        entry = (
            [str(Path(__file__).with_name("inspect_server.py"))]
            if self.inspect
            else ["-m", "chatsio"]
        )
        argv = [sys.executable, *entry, "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            # Its own session: a Ctrl+C in the terminal reaches the bench, which
            # stops the server itself; PDEATHSIG covers a bench that is killed.
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    async def wait_healthy(self, within: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{self.tail()}")
                try:
                    async with http.get(self.url + "/api/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {within} s")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited in time. Its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def log_count(self, needle: str) -> int:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count(needle)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def fds(self) -> int:
        return open_fds(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    async def metrics(self) -> dict[tuple[str, tuple], float]:
        """Every sample of /metrics, keyed by (name, sorted label pairs)."""
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            async with http.get(self.url + "/metrics") as response:
                text = await response.text()
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = (
                    sample.value
                )
        return found

    async def sockets(self) -> dict[str, int]:
        """``chatsio_connected_sockets`` per namespace."""
        found = await self.metrics()
        return {
            ns: int(found.get(("chatsio_connected_sockets", (("namespace", ns),)), 0))
            for ns in NAMESPACES
        }

    async def internals(
        self, collect: bool = False, trim: bool = False, trace: bool = False
    ) -> dict:
        """What ``bench/inspect_server.py`` reports (only with ``--inspect``);
        ``collect`` runs a full garbage collection in the server first, ``trim``
        then glibc's malloc_trim(0); ``trace`` compares tracemalloc snapshots."""
        wanted = {"gc": collect, "trim": trim, "trace": trace}
        query = "&".join(f"{name}=1" for name, yes in wanted.items() if yes)
        query = f"?{query}" if query else ""
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            async with http.get(self.url + "/bench/internals" + query) as response:
                return await response.json()

    async def wait_no_sockets(self, within: float = 30.0) -> tuple[dict, float]:
        """Poll /metrics until no socket is connected; (last reading, seconds)."""
        started = time.monotonic()
        while True:
            found = await self.sockets()
            waited = time.monotonic() - started
            if not any(found.values()) or waited > within:
                return found, waited
            await asyncio.sleep(0.2)


def counter_sum(metrics: dict, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for (sample, pairs), value in metrics.items():
        if sample == name and all(item in pairs for item in labels.items()):
            total += value
    return total


# ---------------------------------------------------------------- set-up


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--database-url",
        help="database for the server (default: a SQLite file in a temporary "
        "directory). A PostgreSQL URL is used as is; user names carry a random "
        "run prefix so runs do not collide",
    )
    group.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="the server's CHATSIO_LOG_LEVEL (default info, as in production)",
    )
    group.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server (repeatable), e.g. "
        "CHATSIO_RATE_LIMIT=50. By default every setting is the server's default",
    )
    group.add_argument(
        "--users-via",
        choices=("seed", "rest"),
        default="seed",
        help="seed: write the users into the database before the server starts, "
        "as `chatsio createuser` does, sharing one Argon2 hash, and sign their "
        "tokens with the server's key (seconds for 1000 users); rest: POST "
        "/api/users + /api/tokens each (two Argon2 runs, ~0.2 s per user)",
    )
    group.add_argument(
        "--inspect",
        action="store_true",
        help="run the server through bench/inspect_server.py, which is `chatsio "
        "serve` plus GET /bench/internals (sessions, rooms, tasks)",
    )
    group.add_argument(
        "--keep", action="store_true", help="keep the work directory (log, database)"
    )


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {}
    if getattr(args, "users_via", None) == "rest":
        # Every user registers from 127.0.0.1: past the default 20 an hour
        # per client address, registration would answer 429.
        env["CHATSIO_REGISTRATIONS_PER_HOUR"] = "1000000"
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


class Workdir:
    """A temporary directory for the server's log and SQLite file."""

    def __init__(self, name: str, keep: bool) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"chatsio-{name}-"))
        self.keep = keep

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.keep:
            print(f"kept {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def make_server(args: argparse.Namespace, workdir: Path) -> Server:
    url = args.database_url or f"sqlite:///{workdir / 'chatsio.db'}"
    return Server(
        workdir,
        url,
        log_level=args.log_level,
        env=server_env(args),
        inspect=args.inspect,
    )


def describe_machine() -> None:
    """The machine and the code a run measured."""
    mem_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "chatsio"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"machine: {os.cpu_count()} CPUs, {mem_kib / 2**20:.1f} GiB, "
        f"Python {platform.python_version()}; chatsio at {commit or '?'}"
        f"{' + uncommitted changes in chatsio/' if dirty else ''}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


def run(main, args: argparse.Namespace, budget: float) -> int:
    """Run ``main(args)`` within ``budget`` seconds.

    Ctrl+C or SIGTERM cancels it, so its ``finally`` blocks stop the server and
    the client processes; exit code 130. (Handled here rather than left to
    asyncio.run, which ignores SIGINT in a shell's background job.)
    """

    async def bounded() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        async with asyncio.timeout(budget):
            return await main(args)

    try:
        return asyncio.run(bounded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    except TimeoutError:
        print(f"gave up: the run took longer than {budget:.0f} s", file=sys.stderr)
        return 1
