"""Real processes for the many-node tests: chatsio nodes, a private Redis, a
TCP proxy that can cut a node off from PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import socketio
from conftest import PASSWORD, TIMEOUT, Peer

from chatsio.protocol import CHAT, CONTROL

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_until(check, *, within: float, every: float = 0.05) -> None:
    """Poll ``check()`` (sync or async) until true; fail after ``within`` s."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(every)


class Process:
    """A child process whose output goes to a log file."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(self, *argv: str, env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=out, env=env
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send(self, signum: int) -> None:
        if self.running:
            self.proc.send_signal(signum)

    async def stop(self, signum: int = signal.SIGTERM, within: float = 10.0) -> int:
        """Signal and wait; kill if it does not exit in time. Returns its code."""
        if self.running:
            self.proc.send_signal(signum)
            try:
                await asyncio.wait_for(self.proc.wait(), within)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class RedisServer(Process):
    """A private redis-server on its own port, to stop, start and freeze."""

    def __init__(self, directory: Path) -> None:
        super().__init__("redis", directory / "redis.log")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> RedisServer:
        await self.spawn(
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
        )  # fmt: skip
        await wait_until(self.answers, within=START_TIMEOUT)
        return self

    async def answers(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    async def command(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(self.port), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        return out.decode()

    async def clients(self) -> int:
        """Connections Redis holds, the redis-cli asking excluded."""
        listing = await self.command("CLIENT", "LIST")
        return len([line for line in listing.splitlines() if line]) - 1

    def freeze(self) -> None:
        self.send(signal.SIGSTOP)

    def thaw(self) -> None:
        self.send(signal.SIGCONT)


class Node(Process):
    """One ``chatsio serve`` process (``launcher``: what the Python
    interpreter runs, with ``serve`` and its arguments after it)."""

    def __init__(
        self,
        name: str,
        directory: Path,
        env: dict[str, str],
        launcher: tuple[str, ...] = ("-m", "chatsio"),
    ) -> None:
        super().__init__(name, directory / f"{name}.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.launcher = launcher

    async def start(self) -> Node:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "CHATSIO_LOG_LEVEL": "info",
            "CHATSIO_RATE_LIMIT": "1000",
            "CHATSIO_RATE_BURST": "1000",
            **self.env,
        }
        await self.spawn(
            sys.executable, *self.launcher, "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            env=env,
        )  # fmt: skip
        await wait_until(self.healthy, within=START_TIMEOUT, every=0.1)
        return self

    async def health(self) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.url + "/api/health") as response:
                return response.status, await response.json()

    async def healthy(self) -> bool:
        if not self.running:
            raise RuntimeError(f"{self.name} exited:\n{self.text()}")
        try:
            status, _ = await self.health()
        except aiohttp.ClientError:
            return False
        return status == 200

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@contextlib.asynccontextmanager
async def running_nodes(directory: Path, env: dict[str, str], names=("a", "b")):
    """``chatsio serve`` nodes of one deployment, stopped on the way out."""
    started: list[Node] = []
    try:
        for name in names:
            started.append(await Node(name, directory, env).start())
        yield started
    finally:
        for node in started:
            await node.stop()


async def api(node: Node, method: str, path: str, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(
            method, node.url + path, headers=headers, **kwargs
        ) as response:
            body = await response.read()
            return response.status, body


async def register(node: Node, name: str) -> str:
    """Register ``name`` through ``node``; its token."""
    credentials = {"username": name, "password": PASSWORD}
    await api(node, "POST", "/api/users", json=credentials)
    status, body = await api(node, "POST", "/api/tokens", json=credentials)
    assert status == 200, body
    return json.loads(body)["token"]


async def device(node: Node, token: str, namespaces=(CONTROL, CHAT), **connect) -> Peer:
    """A client connected to ``node``; /control's welcome is waited for."""
    client = socketio.AsyncClient(reconnection=False)
    peer = Peer(client)
    client.on("*", peer.record, namespace="*")
    await client.connect(
        node.url,
        auth={"token": token},
        namespaces=list(namespaces),
        wait_timeout=TIMEOUT,
        **connect,
    )
    if CONTROL in namespaces:
        await peer.next(CONTROL, "welcome")
    return peer


async def close_all(peers) -> None:
    for peer in peers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.client.eio.disconnect(abort=True), TIMEOUT)


class TcpProxy:
    """Forwards a local port to a target; ``cut`` drops every connection and
    refuses new ones, as a stopped server would; ``restore`` listens again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        return self

    async def _accept(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.pipes.update((writer, up_writer))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer)
        )

    async def _pump(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.pipes.discard(writer)
            writer.close()

    async def cut(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.pipes):
            transport = writer.transport
            transport.abort()  # RST, like a server that went away
        self.pipes.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self.server is not None and self.server.is_serving():
            await self.cut()
