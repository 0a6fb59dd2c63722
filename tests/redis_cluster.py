"""A three-master Redis Cluster on loopback for the cluster tests: started once
per module, each master killed, restarted on its port or frozen at will; and
``WholeCluster``, the cluster as the many-node tests' ``redis_server``."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import redis
from conftest import unavailable

from chatsio.transport.bus import default_channel

START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 10.0
CLUSTER_BUS_OFFSET = 10_000  # redis-server's port for its cluster bus


def require_redis_tools() -> None:
    """Skip unless redis-server and redis-cli are installed (fail in CI)."""
    missing = [tool for tool in ("redis-server", "redis-cli") if not shutil.which(tool)]
    if missing:
        unavailable(" and ".join(missing), "not on PATH")


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    while True:
        port = random.randrange(20_000, 30_000)
        try:
            for candidate in (port, port + CLUSTER_BUS_OFFSET):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class RedisCluster:
    """Masters on free ports, joined by ``redis-cli --cluster create``, each
    with its ``nodes-<port>.conf`` so a restart rejoins as the same node."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory
        self.ports = [cluster_port() for _ in range(masters)]
        self.procs: dict[int, subprocess.Popen] = {}
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> RedisCluster:
        try:
            return self._create()
        except BaseException:
            self.stop()
            raise

    def _create(self) -> RedisCluster:
        for port in self.ports:
            self.launch(port)
        self.wait(lambda: all(self.answers(port) for port in self.ports))
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        self.wait(self.ok)
        return self

    def launch(self, port: int) -> None:
        log = (self.directory / f"redis-{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log, stderr=log, cwd=self.directory,
        )  # fmt: skip
        log.close()

    def info(self, port: int, command: str = "CLUSTER INFO") -> str:
        with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as r:
            return r.execute_command(*command.split())

    def answers(self, port: int) -> bool:
        try:
            self.info(port, "PING")
        except redis.RedisError:
            return False
        return True

    def master_of(self, channel: str) -> int:
        """The port of the master owning ``channel``'s slot."""
        with redis.Redis(port=self.ports[0], socket_timeout=1) as r:
            slot = r.execute_command("CLUSTER", "KEYSLOT", channel)
            ranges = r.execute_command("CLUSTER", "SLOTS")
        return next(
            master[1] for first, last, master, *_ in ranges if first <= slot <= last
        )

    def ok(self) -> bool:
        """Whether every master says ``cluster_state:ok``."""
        try:
            return all("cluster_state:ok" in self.info(port) for port in self.ports)
        except redis.RedisError:
            return False

    def wait(self, check, within: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis cluster {self.ports} not ready")
            time.sleep(0.05)

    def kill(self, port: int, signum: int = signal.SIGKILL) -> None:
        proc = self.procs[port]
        proc.send_signal(signum)
        proc.wait(COMMAND_TIMEOUT)

    def revive(self) -> None:
        """Start every killed master again on its port (same nodes.conf), then
        wait for the cluster."""
        for port, proc in self.procs.items():
            if proc.poll() is not None:
                self.launch(port)
        self.wait(self.ok)

    def freeze(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for port, proc in self.procs.items():
            self.thaw(port)
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class WholeCluster:
    """The cluster as one Redis, for tests written against ``RedisServer``
    (tests/cluster.py): ``stop``, ``start``, ``freeze`` and ``thaw`` act on
    every master; ``command`` asks every master and merges what they say into
    the answer one Redis holding all their channels and clients would give."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.url = cluster.url
        # A plain Redis lists it under PUBSUB CHANNELS; a cluster shards it too.
        self.broadcast = default_channel(cluster.url)

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        for port in self.cluster.ports:
            await asyncio.to_thread(self.cluster.kill, port, signum)

    async def start(self) -> WholeCluster:
        await asyncio.to_thread(self.cluster.revive)
        return self

    def freeze(self) -> None:
        for port in self.cluster.ports:
            self.cluster.freeze(port)

    def thaw(self) -> None:
        for port in self.cluster.ports:
            self.cluster.thaw(port)

    async def command(self, *args: str) -> str:
        """redis-cli's answer, one item a line, for the commands the many-node
        tests send: PUBSUB SHARDCHANNELS (the broadcast channel left out, as a
        plain Redis does), PUBSUB SHARDNUMSUB, and counts such as CLIENT KILL."""
        answers = await self._on_every_master(
            lambda master: master.execute_command(*args)
        )
        asked = " ".join(args[:2]).upper()
        if asked == "PUBSUB SHARDCHANNELS":
            channels = set().union(*answers) - {self.broadcast}
            return "\n".join(sorted(channels))
        if asked == "PUBSUB SHARDNUMSUB":  # each master counts only its own
            counts = Counter()
            for answer in answers:
                counts.update(dict(zip(answer[::2], answer[1::2], strict=True)))
            return "\n".join(f"{channel}\n{counts[channel]}" for channel in args[2:])
        if all(isinstance(answer, int) for answer in answers):
            return str(sum(answers))
        raise NotImplementedError(f"no merge of {args} over a cluster's masters")

    async def clients(self) -> int:
        """Connections the masters hold, the ones asking excluded."""
        listings = await self._on_every_master(lambda master: master.client_list())
        return sum(len(listing) - 1 for listing in listings)

    async def _on_every_master(self, ask) -> list:
        """``ask(client)`` on each master, in a thread (redis-py's sync client)."""

        def each() -> list:
            answers = []
            for port in self.cluster.ports:
                with redis.Redis(
                    port=port, socket_timeout=COMMAND_TIMEOUT, decode_responses=True
                ) as master:
                    answers.append(ask(master))
            return answers

        return await asyncio.to_thread(each)

    async def recover(self) -> None:
        """Every master running and answering again, whatever a test left."""
        self.thaw()
        await self.start()
