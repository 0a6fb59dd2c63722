"""The processes of a perf run: the servers compared, and the Node load
generator driven over JSON lines on its stdin and stdout.

Every child gets PDEATHSIG (it dies with the runner, however the runner
dies) and its own session (a Ctrl+C reaches the runner, which stops it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from machine import GENERATOR_CORE, ROOT, SERVER_CORE, cpu_seconds, pinned, rss_kib

sys.path.insert(0, str(ROOT / "bench"))
from common import die_with_parent, free_port

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


def spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path, **kw):
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=kw.pop("stdout", out),
            stderr=out,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent,
            **kw,
        )


def clean_env(**extra: str) -> dict[str, str]:
    """Nothing from the caller's shell (a REDIS_URL, say) leaks into a server."""
    return {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", **extra}


@dataclass
class ServerProcess:
    """One server process pinned to the server core, logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    port: int
    health_path: str = "/api/health"
    cwd: Path | None = None  # where it runs; the work directory by default
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.workdir / f"{self.name}-{self.port}.log"
        argv = pinned(self.argv, SERVER_CORE)
        self.proc = spawn(argv, self.env, log, self.cwd or self.workdir)

    async def wait_healthy(self, within: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.workdir}")
                try:
                    async with http.get(self.url + self.health_path) as reply:
                        if reply.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {within} s")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def chatsio_server(
    workdir: Path,
    database_url: str,
    without: tuple[str, ...] = (),
    source: Path | None = None,
    **env: str,
) -> ServerProcess:
    """``chatsio serve`` with every setting at its default (rate limits
    included), storing every message, as in production; ``without`` names
    transport pieces to take away (through ``serve_without.py``); ``source``
    is another checkout to run chatsio from (a worktree of an earlier commit):
    the server runs in it with it first on PYTHONPATH, so it imports that
    tree's chatsio rather than the one installed in the venv."""
    port = free_port()
    if source is not None:
        env["PYTHONPATH"] = str(source)
    if without:
        argv = [sys.executable, str(HERE / "serve_without.py"), ",".join(without)]
    else:
        argv = [sys.executable, "-m", "chatsio"]
    argv += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    environment = clean_env(DATABASE_URL=database_url, CHATSIO_LOG_LEVEL="info", **env)
    return ServerProcess("chatsio", argv, environment, workdir, port, cwd=source)


def node_peer(workdir: Path) -> ServerProcess:
    port = free_port()
    argv = ["node", str(NODE_DIR / "peer-server.js"), "--port", str(port)]
    env = clean_env(NODE_ENV="production")
    return ServerProcess("node-peer", argv, env, workdir, port)


def python_peer(workdir: Path) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, str(HERE / "python_peer.py"), "--port", str(port)]
    return ServerProcess("python-peer", argv, clean_env(), workdir, port)


class Generator:
    """The Node load generator, pinned to the generator core.

    It holds every client; each command is one JSON line in and one JSON
    line out, and every wait for an answer has a deadline.
    """

    def __init__(self, workdir: Path, config: dict) -> None:
        self.workdir = workdir
        self.config_path = workdir / f"generator-{time.monotonic_ns()}.json"
        self.config_path.write_text(json.dumps(config))
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> dict:
        argv = pinned(
            ["node", str(NODE_DIR / "generator.js"), str(self.config_path)],
            GENERATOR_CORE,
        )
        with (self.workdir / "generator.log").open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=die_with_parent,
                limit=2**24,
            )
        return await self._answer(30.0)

    async def _answer(self, within: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not line:
            raise RuntimeError(f"the generator exited; see {self.workdir}")
        answer = json.loads(line)
        if answer.get("event") == "error":
            raise RuntimeError(f"generator: {answer.get('message')}")
        return answer

    async def command(self, within: float, **command) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._answer(within)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.command(10.0, cmd="close")
            await asyncio.wait_for(self.proc.wait(), 5.0)
        except (TimeoutError, RuntimeError, ConnectionError):
            pass
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
